"""Train the demo weights of the shipped bundles on synthetic phantoms (on the CPU; the lung and
brain networks on the first CUDA GPU when there is one).

Usage (from the repository root; about 40 minutes on 2 idle cores, then ``models.calibrate``)::

    nice -n 10 .venv/bin/python -m models.train all

Each model trains for a fixed wall-clock budget (``--minutes``; ``--steps`` instead for a run
that does not depend on how busy the machine is) on synthetic studies made by
:mod:`dicomnode.synthetic` with seeds from :data:`models.training.common.TRAIN_SEED_BASE`
(lung 100000+, brain 200000+, mammography 300000+). Evaluation (``bench/evaluate.py``) and the
tests use seeds below 10000, so training and evaluation data never overlap. The weights go to
``models/<bundle>/models/model.pt`` and their sha256 into the bundle's ``metadata.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
BUNDLES = {
    "lung": ROOT / "lung_nodule_ct_detection",
    "brain": ROOT / "brain_flair_segmentation",
    "mammo": ROOT / "mammo_classification",
}
MINUTES = {"lung": 14.0, "brain": 11.0, "mammo": 5.0}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=[*BUNDLES, "all"])
    parser.add_argument("--minutes", type=float, help="wall-clock budget per model")
    parser.add_argument(
        "--steps", type=int, help="optimiser steps per model instead of the wall-clock budget"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads, and the processes that make the lung's and brain's training studies",
    )
    parser.add_argument("--init", type=Path, help="lung or brain: fine-tune from these weights")
    args = parser.parse_args(argv)
    if args.init is not None and args.model not in ("lung", "brain"):
        parser.error("--init applies to the lung and brain models only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = list(BUNDLES) if args.model == "all" else [args.model]
    for name in names:
        minutes = args.minutes if args.minutes is not None else MINUTES[name]
        if name == "lung":
            from models.training.lung import train as train_lung

            result = train_lung(
                BUNDLES[name], minutes, steps=args.steps, init=args.init, processes=args.threads
            )
        elif name == "brain":
            from models.training.brain import train as train_brain

            result = train_brain(
                BUNDLES[name], minutes, steps=args.steps, init=args.init, processes=args.threads
            )
        else:
            from models.training.mammo import train as train_mammo

            result = train_mammo(BUNDLES[name], minutes, steps=args.steps)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
