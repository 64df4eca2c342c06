"""CPU time, wall time and peak RSS of each pipeline on typical study sizes.

Usage (from the repository root)::

    nice -n 10 .venv/bin/python bench/pipelines.py [--device cpu] [--small]

Studies (synthetic, written to a temporary folder first so generating them is not measured):

- lung_nodule: chest CT 512 x 512 x 300 (0.70 mm pixels, 1 mm slices);
- brain_lesion: FLAIR 240 x 240 x 155 (1 mm);
- mammo_score: 4 views of 3328 x 2560 pixels (0.07 mm), 14 bits.

Each pipeline runs in its own child process (``--one``): the child loads the model and runs the
pipeline twice (cold: model load + first run; warm: the second run, model kept loaded), and
reports its CPU time and peak RSS (``ru_maxrss``). Peak RSS must stay under 6 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RSS_LIMIT_GB = 6.0
SIZES = {
    "lung_nodule": "CT 512x512x300",
    "brain_lesion": "MR FLAIR 240x240x155",
    "mammo_score": "MG 4 x 3328x2560",
}
SMALL = {
    "lung_nodule": "CT 256x256x120",
    "brain_lesion": "MR FLAIR 128x128x64",
    "mammo_score": "MG 4 x 1024x832",
}


def _write(name: str, directory: Path, small: bool) -> None:
    from dicomnode.synthetic import brain_mr, chest_ct, mammography, write_study

    if name == "lung_nodule":
        shape = (256, 256, 120) if small else (512, 512, 300)
        write_study(chest_ct(5000, shape=shape, n_nodules=3).datasets, directory)
    elif name == "brain_lesion":
        shape = (128, 128, 64) if small else (240, 240, 155)
        write_study(brain_mr(5001, shape=shape).datasets, directory)
    else:
        shape2 = (1024, 832) if small else (3328, 2560)
        write_study(mammography(5002, shape=shape2, bits_stored=14).datasets, directory)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_one(name: str, directory: Path, device: str) -> dict:
    """In the child: run pipeline ``name`` twice on the files in ``directory``."""
    from dicomnode.pipeline import PipelineRegistry, RunContext
    from dicomnode.pipeline.runner import discover_inputs

    cls = PipelineRegistry().get(name)
    pipeline = cls({})
    jobs, _ = discover_inputs(directory, cls.level)
    ctx = RunContext(device=device, work_dir=directory)
    figures = {}
    for label in ("cold", "warm"):
        cpu, wall = _cpu_seconds(), time.monotonic()
        pipeline.check(jobs[0])
        result = pipeline.run(jobs[0], ctx)
        figures[f"{label}_wall_s"] = round(time.monotonic() - wall, 1)
        figures[f"{label}_cpu_s"] = round(_cpu_seconds() - cpu, 1)
    figures["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
    figures["findings"] = len(result.findings.regions) + len(result.findings.classifications)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Benchmark every pipeline (or one, with ``--one``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--small", action="store_true", help="smaller studies (quick check)")
    parser.add_argument("--only", nargs="*", default=list(SIZES))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, Path(args.data), args.device)))
        return 0
    results = {}
    with tempfile.TemporaryDirectory(prefix="dicomnode-bench-") as tmp:
        for name in args.only:
            directory = Path(tmp) / name
            _write(name, directory, args.small)
            command = [sys.executable, __file__, "--one", name, "--data", str(directory)]
            command += ["--device", args.device]
            out = subprocess.run(command, capture_output=True, text=True, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            figures["input"] = (SMALL if args.small else SIZES)[name]
            results[name] = figures
            print(name, json.dumps(figures), flush=True)
    worst = max(r["peak_rss_gb"] for r in results.values())
    verdict = "under" if worst < RSS_LIMIT_GB else "OVER"
    print(f"largest peak RSS {worst:.2f} GB: {verdict} the {RSS_LIMIT_GB:.0f} GB limit")
    return 0 if worst < RSS_LIMIT_GB else 1


if __name__ == "__main__":
    raise SystemExit(main())
