"""Command line of :mod:`dicomnode.synthetic`: generate one study, write it, print a summary.

The summary names kind, seed, counts, ground truth in brief and the output folder, never the
(synthetic) patient name.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dicomnode.synthetic.common import write_study
from dicomnode.synthetic.ct import chest_ct
from dicomnode.synthetic.mg import mammography
from dicomnode.synthetic.mr import brain_mr, brats_study

__all__ = ["main"]

_DEFAULT_SHAPES = {"ct": "96x96x48", "mr": "96x96x48", "brats": "96x96x48", "mg": "512x416"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dicomnode.synthetic",
        description="Write a synthetic DICOM study with known ground truth.",
    )
    parser.add_argument("kind", choices=sorted(_DEFAULT_SHAPES), help="what to generate")
    parser.add_argument("--seed", type=int, default=0, help="seed (same seed, same bytes)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--shape", help="ROWSxCOLUMNSxSLICES (ct, mr, brats) or ROWSxCOLUMNS (mg)")
    parser.add_argument(
        "--count", type=int, help="nodules (ct), lesions (mr, brats), masses per breast (mg)"
    )
    parser.add_argument("--reverse", action="store_true", help="slice 1 at the head end (ct, mr)")
    parser.add_argument("--shuffle-names", action="store_true", help="file names hide the order")
    parser.add_argument("--density", choices=list("ABCD"), help="breast density class (mg)")
    parser.add_argument("--monochrome1", action="store_true", help="MONOCHROME1 pixels (mg)")
    parser.add_argument("--truth", type=Path, help="also write the ground truth as JSON here")
    return parser


def _shape(text: str, length: int) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) != length or min(values) < 1:
        raise ValueError(f"--shape must be {length} positive integers joined by 'x', got {text!r}")
    return values


def _generate(args: argparse.Namespace) -> tuple[list[Dataset], Any, str]:
    kind = args.kind
    shape = _shape(args.shape or _DEFAULT_SHAPES[kind], 2 if kind == "mg" else 3)
    if kind == "ct":
        extra = {} if args.count is None else {"n_nodules": args.count}
        ct = chest_ct(args.seed, shape=shape, reverse_order=args.reverse, **extra)  # type: ignore[arg-type]
        sizes = ", ".join(f"{n.diameter_mm:.1f} mm {n.kind.value}" for n in ct.nodules)
        return ct.datasets, ct.nodules, f"{len(ct.nodules)} nodules ({sizes})"
    if kind in ("mr", "brats"):
        generate = brats_study if kind == "brats" else brain_mr
        extra = {} if args.count is None else {"n_lesions": args.count}
        mr = generate(args.seed, shape=shape, reverse_order=args.reverse, **extra)  # type: ignore[arg-type]
        total = sum(lesion.volume_ml for lesion in mr.lesions)
        return mr.datasets, mr.lesions, f"{len(mr.lesions)} lesions ({total:.2f} mL)"
    masses = None if args.count is None else {"R": args.count, "L": args.count}
    mg = mammography(
        args.seed,
        shape=shape,  # type: ignore[arg-type]
        density=args.density,
        masses=masses,
        photometric="MONOCHROME1" if args.monochrome1 else "MONOCHROME2",
    )
    sides = "".join(side for side in "RL" if mg.truth.has_mass(side)) or "none"
    return mg.datasets, mg.truth, f"density {mg.truth.density.value}, masses: {sides}"


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(_jsonable(key)): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for usage errors)."""
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        datasets, truth, summary = _generate(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    paths = write_study(datasets, args.out, shuffle_names=args.shuffle_names)
    if args.truth is not None:
        args.truth.parent.mkdir(parents=True, exist_ok=True)
        args.truth.write_text(json.dumps(_jsonable(truth), indent=2) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - started
    print(
        f"{args.kind} seed={args.seed}: {len(paths)} instances, {summary}, "
        f"study {datasets[0].StudyInstanceUID} -> {args.out} ({elapsed:.1f} s)"
    )
    return 0
