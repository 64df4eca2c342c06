"""Decode bombs: how fast and how cheaply each pipeline refuses them, against decoding them.

Usage (from the repository root)::

    .venv/bin/python bench/decode_bombs.py

For each pipeline and each bomb of :mod:`testkit.bombs` (``declared``: one image of a
valid study declares 65535 x 65535; ``rle``: every image is RLE Lossless at 64:1, hundreds of
MB declared in a few MB), two fresh child processes measure, after their imports:

- refusal: the pipeline's ``run`` (its whole input path: check, read, budget) until it raises
  ``InputRefused``;
- peer: naive decoding with pydicom, ``dcmread(path).pixel_array`` of every bomb file (arrays
  kept, as a pipeline building a volume would).

Each reports wall time and peak RSS growth (``VmHWM`` after minus ``VmRSS`` before, with the
peak reset through ``/proc/self/clear_refs``). One line per bomb with both and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.bombs import BOMB_KINDS, PIPELINES, bomb_study  # noqa: E402

_MB = 1024**2


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _measure(work: Any) -> dict[str, Any]:
    _reset_peak()
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    outcome = work()
    seconds = time.perf_counter() - started
    growth = max(0, _status_kb("VmHWM") - before) * 1024
    return {"seconds": seconds, "rss_growth": growth, "outcome": outcome}


def _refuse(pipeline: str, files: list[Path], work_dir: Path) -> dict[str, Any]:
    from pydicom import dcmread

    from dicomnode.pipeline import InputRefused, PipelineInputs, RunContext, SeriesInput
    from pipelines.brain_lesion import BrainLesionPipeline
    from pipelines.lung_nodule import LungNodulePipeline
    from pipelines.mammo_score import MammoScorePipeline

    classes = {
        "lung_nodule": LungNodulePipeline,
        "brain_lesion": BrainLesionPipeline,
        "mammo_score": MammoScorePipeline,
    }
    ds = dcmread(files[0], stop_before_pixels=True)
    series = SeriesInput(
        str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), tuple(files), modality=ds.Modality
    )
    inputs = PipelineInputs(series.study_uid, (series,))
    instance = classes[pipeline]()
    ctx = RunContext(device="cpu", work_dir=work_dir)

    def work() -> str:
        try:
            instance.run(inputs, ctx)
        except InputRefused as exc:
            return f"refused: {exc.reason}"
        return "NOT REFUSED"

    return _measure(work)


def _decode(files: list[Path]) -> dict[str, Any]:
    import numpy as np
    from pydicom import dcmread

    def work() -> str:
        try:
            arrays = [np.asarray(dcmread(path).pixel_array) for path in files]
        except Exception as exc:  # the peer may fail: that is a result too
            return f"{type(exc).__name__}: {exc}"[:120]
        return f"decoded {sum(a.nbytes for a in arrays) / _MB:.0f} MB"

    return _measure(work)


def _child(mode: str, pipeline: str, directory: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", mode, pipeline, str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        return {"seconds": float("nan"), "rss_growth": 0, "outcome": out.stderr.strip()[-200:]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.dcm"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=3, metavar=("MODE", "PIPELINE", "DIR"), help="internal")
    args = parser.parse_args(argv)
    if args.one:
        mode, pipeline, directory = args.one
        files = _files(Path(directory))
        if mode == "refuse":
            with tempfile.TemporaryDirectory() as work:
                result = _refuse(pipeline, files, Path(work))
        else:
            bombs = files if mode == "decode-all" else files[:1]
            result = _decode(bombs)
        print(json.dumps(result))
        return 0
    from pipelines.common.dicomio import check_decode_budget, read_headers

    with tempfile.TemporaryDirectory(prefix="decode-bombs-") as tmp:
        for pipeline in PIPELINES:
            for kind in BOMB_KINDS:
                directory = Path(tmp) / f"{pipeline}-{kind}"
                files = bomb_study(pipeline, kind, directory)
                stored = sum(p.stat().st_size for p in files)
                declared = check_decode_budget(read_headers(files), 2**62, max_ratio=2**62)
                refused = _child("refuse", pipeline, directory)
                naive = _child(
                    "decode-all" if kind == "rle" else "decode-first", pipeline, directory
                )
                what = f"{len(files)} files" if kind == "rle" else "1 file"
                print(
                    f"{pipeline:12s} {kind:8s} {stored / _MB:5.1f} MB stored, declares "
                    f"{declared / _MB:7.0f} MB | refused in {refused['seconds']:.3f} s, "
                    f"+{refused['rss_growth'] / _MB:.1f} MB RSS | pydicom pixel_array ({what}): "
                    f"{naive['seconds']:.3f} s, +{naive['rss_growth'] / _MB:.1f} MB RSS "
                    f"({naive['outcome']}) | ratio time "
                    f"{naive['seconds'] / max(refused['seconds'], 1e-6):.0f}x, RSS "
                    f"{naive['rss_growth'] / max(refused['rss_growth'], _MB):.0f}x"
                )
                print(f"{'':22s}{refused['outcome'][:150]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
