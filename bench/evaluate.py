"""Score the shipped pipelines on held-out synthetic studies.

Usage (from the repository root)::

    nice -n 10 .venv/bin/python bench/evaluate.py [--lung 20] [--brain 10] [--mammo 50]

Prints, as one JSON object and a table:

- lung_nodule: sensitivity at 1 false positive per scan for nodules >= 5 mm (target >= 0.9);
- brain_lesion: mean Dice of the lesion mask per study (target >= 0.75);
- mammo_score: AUC of the per-breast mass score (target >= 0.9) and density accuracy per
  breast (target >= 0.8).

Seeds: lung 1000+, brain 2000+, mammography 3000+ (the tests use seeds below 100); training
uses 100000 and up (``models/training/common.py``), so no evaluation study was seen in
training.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicomnode.pipeline import PipelineInputs, RunContext, SeriesInput  # noqa: E402
from dicomnode.synthetic import brain_mr, chest_ct, mammography, write_study  # noqa: E402
from pipelines.brain_lesion import BrainLesionPipeline  # noqa: E402
from pipelines.lung_nodule import LungNodulePipeline  # noqa: E402
from pipelines.mammo_score import MammoScorePipeline  # noqa: E402

SEEDS = {"lung": 1000, "brain": 2000, "mammo": 3000}
TARGETS = {
    "lung_sensitivity_at_1fp": 0.9,
    "brain_dice": 0.75,
    "mammo_mass_auc": 0.9,
    "mammo_density_accuracy": 0.8,
}


def _inputs(files: list[Path], datasets: list) -> PipelineInputs:
    first = datasets[0]
    series = SeriesInput(
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
        files=tuple(files),
        modality=str(first.Modality),
    )
    return PipelineInputs(series.study_uid, (series,))


@dataclass
class Detection:
    """One detection of the lung evaluation."""

    scan: int
    score: float
    nodule: int | None  # index into the scan's nodules >= 5 mm; None: a false positive


def sensitivity_at_fp_rate(
    detections: list[Detection], nodules: int, scans: int, rate: float = 1.0
) -> float:
    """Sensitivity when the score threshold allows ``rate`` false positives per scan."""
    found: set[tuple[int, int]] = set()
    false_positives = 0
    best = 0.0
    for det in sorted(detections, key=lambda d: -d.score):
        if det.nodule is None:
            false_positives += 1
            if false_positives > rate * scans:
                break
        else:
            found.add((det.scan, det.nodule))
        best = len(found) / max(nodules, 1)
    return best


def evaluate_lung(count: int, work: Path, ctx: RunContext) -> dict:
    """Sensitivity at 1 FP/scan on ``count`` chest CTs of 320 x 320 x 120."""
    pipeline = LungNodulePipeline({"threshold": 0.0, "max_findings": 50})
    detections: list[Detection] = []
    total = 0
    seconds = []
    for n in range(count):
        seed = SEEDS["lung"] + n
        ct = chest_ct(seed, shape=(320, 320, 120), n_nodules=3, diameter_range_mm=(3.0, 25.0))
        files = write_study(ct.datasets, work / f"ct{seed}")
        started = time.monotonic()
        result = pipeline.run(_inputs(files, ct.datasets), ctx)
        seconds.append(time.monotonic() - started)
        large = [i for i, nod in enumerate(ct.nodules) if nod.diameter_mm >= 5.0]
        total += len(large)
        for region in result.findings.regions:
            match, ignore = None, False
            for i, nod in enumerate(ct.nodules):
                distance = float(np.linalg.norm(np.subtract(region.center, nod.centre_mm)))
                if distance <= max(nod.diameter_mm / 2, 4.0):
                    if i in large:
                        match = large.index(i)
                    else:
                        ignore = True  # hits on nodules < 5 mm count neither way
                    break
            if not ignore:
                detections.append(Detection(n, float(region.score or 0.0), match))
    return {
        "lung_sensitivity_at_1fp": round(sensitivity_at_fp_rate(detections, total, count), 3),
        "lung_sensitivity_at_2fp": round(sensitivity_at_fp_rate(detections, total, count, 2), 3),
        "lung_scans": count,
        "lung_nodules_ge_5mm": total,
        "lung_seeds": f"{SEEDS['lung']}..{SEEDS['lung'] + count - 1}",
        "lung_seconds_per_scan": round(float(np.mean(seconds)), 1),
    }


def evaluate_brain(count: int, work: Path, ctx: RunContext) -> dict:
    """Mean Dice on ``count`` FLAIR studies of 160 x 160 x 80."""
    pipeline = BrainLesionPipeline()
    dices, seconds = [], []
    for n in range(count):
        seed = SEEDS["brain"] + n
        mr = brain_mr(seed, shape=(160, 160, 80), n_lesions=3)
        files = write_study(mr.datasets, work / f"mr{seed}")
        started = time.monotonic()
        result = pipeline.run(_inputs(files, mr.datasets), ctx)
        seconds.append(time.monotonic() - started)
        mask, truth = result.findings.masks[0].array, mr.lesion_mask
        denominator = mask.sum() + truth.sum()
        dices.append(2.0 * np.sum(mask & truth) / denominator if denominator else 1.0)
    return {
        "brain_dice": round(float(np.mean(dices)), 3),
        "brain_dice_min": round(float(np.min(dices)), 3),
        "brain_studies": count,
        "brain_seeds": f"{SEEDS['brain']}..{SEEDS['brain'] + count - 1}",
        "brain_seconds_per_study": round(float(np.mean(seconds)), 1),
    }


def auc(scores: list[float], labels: list[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    pos = np.asarray([s for s, y in zip(scores, labels, strict=True) if y])
    neg = np.asarray([s for s, y in zip(scores, labels, strict=True) if not y])
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def evaluate_mammo(count: int, work: Path, ctx: RunContext) -> dict:
    """Mass AUC and density accuracy per breast on ``count`` 4-view studies."""
    pipeline = MammoScorePipeline()
    scores, labels, correct = [], [], []
    for n in range(count):
        seed = SEEDS["mammo"] + n
        photometric = "MONOCHROME1" if n % 2 else "MONOCHROME2"
        mg = mammography(seed, mass_probability=0.5, photometric=photometric)
        files = write_study(mg.datasets, work / f"mg{seed}")
        result = pipeline.run(_inputs(files, mg.datasets), ctx)
        for c in result.findings.classifications:
            assert c.laterality is not None and c.density is not None
            scores.append(float(c.score or 0.0))
            labels.append(mg.truth.has_mass(c.laterality.value))
            correct.append(c.density.value == mg.truth.density.value)
    return {
        "mammo_mass_auc": round(auc(scores, labels), 3),
        "mammo_density_accuracy": round(float(np.mean(correct)), 3),
        "mammo_breasts": len(labels),
        "mammo_breasts_with_mass": int(sum(labels)),
        "mammo_seeds": f"{SEEDS['mammo']}..{SEEDS['mammo'] + count - 1}",
    }


def main(argv: list[str] | None = None) -> int:
    """Run the evaluations asked for and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lung", type=int, default=20, help="chest CTs (0: skip)")
    parser.add_argument("--brain", type=int, default=10, help="FLAIR studies (0: skip)")
    parser.add_argument("--mammo", type=int, default=50, help="mammography studies (0: skip)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="dicomnode-eval-") as tmp:
        work = Path(tmp)
        ctx = RunContext(device=args.device, work_dir=work)
        for name, count, evaluate in (
            ("lung", args.lung, evaluate_lung),
            ("brain", args.brain, evaluate_brain),
            ("mammo", args.mammo, evaluate_mammo),
        ):
            if count > 0:
                started = time.monotonic()
                figures.update(evaluate(count, work / name, ctx))
                figures[f"{name}_eval_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures, indent=2))
    for key, target in TARGETS.items():
        if key in figures:
            verdict = "meets" if figures[key] >= target else "BELOW"
            print(f"{key:28s} {figures[key]:6.3f}  target >= {target:.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
