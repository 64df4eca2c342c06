"""Time the pipelines on a CUDA GPU, including the lung pipeline with the official-size network.

Usage (on a GPU machine, from the repository root)::

    python bench/gpu_lung.py --official /path/to/monai-bundles/lung_nodule_ct_detection

The official ``lung_nodule_ct_detection`` config (ResNet50 backbone, 512 x 512 x 192 patch,
0.70 x 0.70 x 1.25 mm) is built through the same loader with random weights (the official
weights are not shipped); the timing is what matters. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dicomnode.pipeline import Pipeline, PipelineInputs, RunContext  # noqa: E402
from dicomnode.pipeline.runner import discover_inputs  # noqa: E402
from dicomnode.synthetic import brain_mr, chest_ct, mammography, write_study  # noqa: E402


def _time(label: str, pipeline: Pipeline, inputs: PipelineInputs, ctx: RunContext) -> None:
    for run in ("cold", "warm"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        started = time.monotonic()
        result = pipeline.run(inputs, ctx)
        torch.cuda.synchronize()
        figures = {
            "what": label,
            "run": run,
            "wall_s": round(time.monotonic() - started, 2),
            "gpu_peak_gb": round(torch.cuda.max_memory_allocated() / 1024**3, 2),
            "findings": len(result.findings.regions) + len(result.findings.classifications),
            "device": torch.cuda.get_device_name(),
        }
        print(json.dumps(figures), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Generate the studies, run each pipeline twice on CUDA, print the timings."""
    from pipelines.brain_lesion import BrainLesionPipeline
    from pipelines.lung_nodule import LungNodulePipeline
    from pipelines.mammo_score import MammoScorePipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, help="official lung_nodule_ct_detection bundle")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ctx = RunContext(device="cuda", work_dir=root)
        write_study(chest_ct(5000, shape=(512, 512, 300), n_nodules=3).datasets, root / "ct")
        write_study(brain_mr(5001, shape=(240, 240, 155)).datasets, root / "mr")
        write_study(mammography(5002, shape=(3328, 2560), bits_stored=14).datasets, root / "mg")
        ct = discover_inputs(root / "ct", LungNodulePipeline.level)[0][0]
        _time("lung demo 512x512x300", LungNodulePipeline({"threshold": 0.3}), ct, ctx)
        if args.official:
            official = LungNodulePipeline({"bundle": str(args.official), "threshold": 0.3})
            _time("lung OFFICIAL-size ResNet50 512x512x300", official, ct, ctx)
        mr = discover_inputs(root / "mr", BrainLesionPipeline.level)[0][0]
        _time("brain demo 240x240x155", BrainLesionPipeline(), mr, ctx)
        mg = discover_inputs(root / "mg", MammoScorePipeline.level)[0][0]
        _time("mammo demo 4x3328x2560", MammoScorePipeline(), mg, ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
