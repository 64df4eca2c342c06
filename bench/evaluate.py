"""Score the shipped pipelines on held-out studies of two phantom families.

Usage (from the repository root)::

    nice -n 10 .venv/bin/python bench/evaluate.py
        [--family synthetic|phantoms|both|randomised] [--lung 20] [--brain 10] [--mammo 50]
        [--phantom-lung 12] [--phantom-brain 6] [--phantom-mammo 40] [--randomised-lung 20]
        [--randomised-brain 10]

Both families with the default counts took 11 minutes on 2 shared cores (2026-12-05).

Families: ``synthetic`` (:mod:`dicomnode.synthetic`, the generator the demo models were trained
on; seeds lung 1000+, brain 2000+, mammography 3000+) and ``phantoms`` (:mod:`dicomnode.phantoms`,
written independently and never used in training; seeds 5000+, 6000+, 7000+). A third,
``randomised`` (:func:`dicomnode.synthetic.randomize.random_chest_ct` and
:func:`dicomnode.synthetic.random_mr.random_brain_mr`, the domain-randomised draws the lung and
brain networks are trained on, held-out seeds 170000+ and 270000+) measures how well each has
learned its own training distribution. The tests use seeds below 100, training 100000 + n,
200000 + n and 300000 + n with n < 50000, calibration 150000+ and 250000+
(``models/training/common.py``).

Prints, per family, as one JSON object and a table:

- lung_nodule: FROC (sensitivity at 0.25, 0.5, 1, 2, 4 false positives per scan over the
  per-finding scores, pipeline run with threshold 0) for nodules >= 5 mm (hits on smaller ones
  count neither way), the expected calibration error of the per-finding score (hit or not) and,
  per scan, each nodule's best score and the two best false positives;
- brain_lesion: mean and minimum Dice of the lesion mask, mean absolute error of the total
  lesion volume (%), the fraction of truth lesions hit and false-positive lesions per study, and
  those per study;
- mammo_score: AUC of the per-breast mass score, its calibration error, density accuracy.

Targets (meets/BELOW) apply to the phantoms family: lung sensitivity >= 0.9 at 1 FP/scan, brain
Dice >= 0.75 and volume error <= 25 %, mass AUC >= 0.9, density accuracy >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicomnode import phantoms  # noqa: E402
from dicomnode.pipeline import PipelineInputs, RunContext, SeriesInput  # noqa: E402
from dicomnode.results import VolumeGeometry  # noqa: E402
from dicomnode.synthetic import brain_mr, chest_ct, mammography, write_study  # noqa: E402
from dicomnode.synthetic.mr import BrainMR  # noqa: E402
from dicomnode.synthetic.random_mr import random_brain_mr  # noqa: E402
from dicomnode.synthetic.randomize import random_chest_ct  # noqa: E402
from pipelines.brain_lesion import BrainLesionPipeline  # noqa: E402
from pipelines.lung_nodule import LungNodulePipeline  # noqa: E402
from pipelines.mammo_score import MammoScorePipeline  # noqa: E402

SEEDS = {
    "synthetic": {"lung": 1000, "brain": 2000, "mammo": 3000},
    "phantoms": {"lung": 5000, "brain": 6000, "mammo": 7000},
    "randomised": {"lung": 170000, "brain": 270000},
}
FROC_RATES = (0.25, 0.5, 1.0, 2.0, 4.0)
TARGETS = {  # (at least / at most, value), on the phantoms family
    "lung_sensitivity_at_1fp": (">=", 0.9),
    "brain_dice": (">=", 0.75),
    "brain_volume_error_pct": ("<=", 25.0),
    "mammo_mass_auc": (">=", 0.9),
    "mammo_density_accuracy": (">=", 0.8),
}


def _inputs(files: list[Path], datasets: list) -> PipelineInputs:
    """One SeriesInput per series of ``datasets`` (written as ``files``), in first-seen order."""
    groups: dict[str, list[int]] = {}
    for n, ds in enumerate(datasets):
        groups.setdefault(str(ds.SeriesInstanceUID), []).append(n)
    series = tuple(
        SeriesInput(
            study_uid=str(datasets[idx[0]].StudyInstanceUID),
            series_uid=uid,
            files=tuple(files[n] for n in idx),
            modality=str(datasets[idx[0]].Modality),
        )
        for uid, idx in groups.items()
    )
    return PipelineInputs(series[0].study_uid, series)


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


def expected_calibration_error(scores: list[float], outcomes: list[bool], bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over
    ``bins`` equal-width score bins."""
    if not scores:
        return float("nan")
    s, y = np.asarray(scores, float), np.asarray(outcomes, float)
    index = np.minimum((s * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            total += chosen.sum() * abs(float(y[chosen].mean()) - float(s[chosen].mean()))
    return total / len(s)


@dataclass(frozen=True)
class LungCase:
    """One chest CT of either family: datasets and truth nodules (centre mm, diameter mm)."""

    seed: int
    datasets: list
    nodules: list[tuple[tuple[float, float, float], float]]


def _lung_cases(family: str, count: int) -> Iterator[LungCase]:
    for n in range(count):
        seed = SEEDS[family]["lung"] + n
        if family == "synthetic":
            ct = chest_ct(seed, shape=(320, 320, 120), n_nodules=3, diameter_range_mm=(3.0, 25.0))
            nodules = [(tuple(nod.centre_mm), float(nod.diameter_mm)) for nod in ct.nodules]
        elif family == "randomised":
            ct = random_chest_ct(seed)
            nodules = [(tuple(nod.centre_mm), float(nod.diameter_mm)) for nod in ct.nodules]
        else:
            ct = phantoms.chest_ct(seed, matrix=320, slices=120)
            nodules = [(nod.centre_mm, nod.diameter_mm) for nod in ct.nodules]
        yield LungCase(seed, ct.datasets, nodules)  # type: ignore[arg-type]


def _match(center, nodules) -> tuple[int | None, bool]:
    """(index of the nodule >= 5 mm hit, hit a nodule < 5 mm)."""
    for i, (centre, diameter) in enumerate(nodules):
        if float(np.linalg.norm(np.subtract(center, centre))) <= max(diameter / 2, 4.0):
            return (i, False) if diameter >= 5.0 else (None, True)
    return None, False


def evaluate_lung(family: str, count: int, work: Path, ctx: RunContext) -> dict:
    """FROC and score calibration on ``count`` chest CTs (about 320 x 320 x 120)."""
    pipeline = LungNodulePipeline({"threshold": 0.0, "max_findings": 100})
    detections: list[Detection] = []
    total, seconds, scans = 0, [], []
    best_hit: dict[tuple[int, int], tuple[float, float]] = {}  # (scan, nodule): (score, mm off)
    for n, case in enumerate(_lung_cases(family, count)):
        files = _write(case.datasets, work / f"ct{case.seed}")
        started = time.monotonic()
        result = pipeline.run(_inputs(files, case.datasets), ctx)
        seconds.append(time.monotonic() - started)
        large = [i for i, (_, d) in enumerate(case.nodules) if d >= 5.0]
        total += len(large)
        for region in result.findings.regions:
            match, small = _match(region.center, case.nodules)
            if not small:
                index = large.index(match) if match is not None else None
                score = float(region.score or 0.0)
                detections.append(Detection(n, score, index))
                if match is not None and score > best_hit.get((n, match), (-1.0, 0.0))[0]:
                    off = float(np.linalg.norm(np.subtract(region.center, case.nodules[match][0])))
                    best_hit[(n, match)] = (score, off)
        scans.append(_lung_scan_line(case, large, [d for d in detections if d.scan == n]))
    froc = {
        f"lung_sensitivity_at_{rate:g}fp": round(
            sensitivity_at_fp_rate(detections, total, count, rate), 3
        )
        for rate in FROC_RATES
    }
    # every nodule the pipeline puts any box on (threshold 0): what no rescoring of these boxes
    # can exceed at any false-positive rate
    froc["lung_sensitivity_all_detections"] = round(
        sensitivity_at_fp_rate(detections, total, count, math.inf), 3
    )
    return {
        **froc,
        "lung_score_ece": round(
            expected_calibration_error(
                [d.score for d in detections], [d.nodule is not None for d in detections]
            ),
            3,
        ),
        # how far the best box of each nodule hit lies from the nodule's centre (localisation)
        "lung_centre_error_mm_median": round(
            float(np.median([off for _, off in best_hit.values()])) if best_hit else math.nan, 2
        ),
        "lung_scans": count,
        "lung_nodules_ge_5mm": total,
        "lung_seeds": _seeds(family, "lung", count),
        "lung_seconds_per_scan": round(float(np.mean(seconds)), 1),
        "lung_per_scan": scans,
    }


def _lung_scan_line(case: LungCase, large: list[int], detections: list[Detection]) -> str:
    """One line per scan: its seed, the best score of each nodule >= 5 mm (by diameter) and
    the two best false positives."""
    best = [0.0] * len(large)
    false = []
    for det in detections:
        if det.nodule is None:
            false.append(det.score)
        else:
            best[det.nodule] = max(best[det.nodule], det.score)
    nodules = ", ".join(
        f"{case.nodules[i][1]:.1f} mm {score:.3f}" for i, score in zip(large, best, strict=True)
    )
    top = ", ".join(f"{score:.3f}" for score in sorted(false, reverse=True)[:2])
    return f"{case.seed}: nodules {nodules or 'none'}; best false {top or 'none'}"


@dataclass(frozen=True)
class BrainCaseTruth:
    """One FLAIR study of either family: datasets and its truth mask on a geometry."""

    seed: int
    datasets: list
    truth: Callable[[VolumeGeometry], np.ndarray]


def _brain_cases(family: str, count: int) -> Iterator[BrainCaseTruth]:
    for n in range(count):
        seed = SEEDS[family]["brain"] + n
        if family == "synthetic":
            mr = brain_mr(seed, shape=(160, 160, 80), n_lesions=3)
            yield BrainCaseTruth(seed, mr.datasets, lambda _g, m=mr.lesion_mask: m)
        elif family == "randomised":
            mr = random_brain_mr(seed)
            yield BrainCaseTruth(seed, mr.datasets, partial(_randomised_brain_truth, mr))
        else:
            case = phantoms.brain_flair(seed)
            yield BrainCaseTruth(
                seed, case.datasets, lambda g, c=case: phantoms.truth_mask_for(c, g)
            )


def _randomised_brain_truth(mr: BrainMR, geometry: VolumeGeometry) -> np.ndarray:
    """The generator's lesion mask in the slice order of ``geometry`` (a randomised study may
    store its slices in reverse)."""
    mask = mr.lesion_mask[mr.slice_order(geometry.sop_instance_uids)]
    if mask.shape != tuple(geometry.shape):
        raise ValueError(f"truth {mask.shape} does not fit the mask's grid {geometry.shape}")
    return mask


def lesion_detection(mask: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(truth lesions, truth lesions hit by the mask, mask lesions touching no truth lesion);
    lesions are 26-connected components."""
    structure = np.ones((3, 3, 3), bool)
    truth_labels, n_truth = ndimage.label(truth, structure)
    mask_labels, n_mask = ndimage.label(mask, structure)
    hit = len(set(np.unique(truth_labels[mask & truth])) - {0})
    touching = len(set(np.unique(mask_labels[mask & truth])) - {0})
    return n_truth, hit, n_mask - touching


def evaluate_brain(family: str, count: int, work: Path, ctx: RunContext) -> dict:
    """Dice, volume error and lesion-wise detection on ``count`` FLAIR studies."""
    pipeline = BrainLesionPipeline()
    dices, volume_errors, seconds, studies = [], [], [], []
    n_truth = n_hit = n_false = 0
    for case in _brain_cases(family, count):
        files = _write(case.datasets, work / f"mr{case.seed}")
        started = time.monotonic()
        result = pipeline.run(_inputs(files, case.datasets), ctx)
        seconds.append(time.monotonic() - started)
        found = result.findings.masks[0]
        mask, truth = found.array, case.truth(found.geometry)
        denominator = mask.sum() + truth.sum()
        dices.append(2.0 * np.sum(mask & truth) / denominator if denominator else 1.0)
        if truth.sum():
            volume_errors.append(100.0 * abs(float(mask.sum()) - truth.sum()) / truth.sum())
        t, h, f = lesion_detection(mask, truth)
        n_truth, n_hit, n_false = n_truth + t, n_hit + h, n_false + f
        studies.append(
            f"{case.seed}: Dice {dices[-1]:.3f}, {int(mask.sum())}/{int(truth.sum())} "
            f"voxels, {h}/{t} lesions hit, {f} false"
        )
    return {
        "brain_dice": round(float(np.mean(dices)), 3),
        "brain_dice_min": round(float(np.min(dices)), 3),
        "brain_volume_error_pct": round(float(np.mean(volume_errors)), 1),
        "brain_lesions_hit": round(n_hit / max(n_truth, 1), 3),
        "brain_false_lesions_per_study": round(n_false / count, 2),
        "brain_studies": count,
        "brain_seeds": _seeds(family, "brain", count),
        "brain_seconds_per_study": round(float(np.mean(seconds)), 1),
        "brain_per_study": studies,
    }


def auc(scores: list[float], labels: list[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    pos = np.asarray([s for s, y in zip(scores, labels, strict=True) if y])
    neg = np.asarray([s for s, y in zip(scores, labels, strict=True) if not y])
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@dataclass(frozen=True)
class MammoStudy:
    """One 4-view study of either family: datasets, mass per side, density letter."""

    seed: int
    datasets: list
    has_mass: Callable[[str], bool]
    density: str


def _mammo_cases(family: str, count: int) -> Iterator[MammoStudy]:
    for n in range(count):
        seed = SEEDS[family]["mammo"] + n
        photometric = "MONOCHROME1" if n % 2 else "MONOCHROME2"
        if family == "synthetic":
            mg = mammography(seed, mass_probability=0.5, photometric=photometric)
            yield MammoStudy(seed, mg.datasets, mg.truth.has_mass, mg.truth.density.value)
        else:
            case = phantoms.mammography(seed, mass_probability=0.5)
            yield MammoStudy(seed, case.datasets, case.has_mass, case.density)


def evaluate_mammo(family: str, count: int, work: Path, ctx: RunContext) -> dict:
    """Mass AUC and calibration, density accuracy per breast on ``count`` 4-view studies."""
    pipeline = MammoScorePipeline()
    scores, labels, correct = [], [], []
    for study in _mammo_cases(family, count):
        files = _write(study.datasets, work / f"mg{study.seed}")
        result = pipeline.run(_inputs(files, study.datasets), ctx)
        for c in result.findings.classifications:
            assert c.laterality is not None and c.density is not None
            scores.append(float(c.score or 0.0))
            labels.append(study.has_mass(c.laterality.value))
            correct.append(c.density.value == study.density)
    return {
        "mammo_mass_auc": round(auc(scores, labels), 3),
        "mammo_mass_score_ece": round(expected_calibration_error(scores, labels), 3),
        "mammo_density_accuracy": round(float(np.mean(correct)), 3),
        "mammo_breasts": len(labels),
        "mammo_breasts_with_mass": int(sum(labels)),
        "mammo_seeds": _seeds(family, "mammo", count),
    }


def _seeds(family: str, task: str, count: int) -> str:
    first = SEEDS[family][task]
    return f"{first}..{first + count - 1}"


def _write(datasets: list, folder: Path) -> list[Path]:
    return write_study(datasets, folder)


def _verdicts(figures: dict) -> list[str]:
    lines = []
    for key, (sense, target) in TARGETS.items():
        if key in figures:
            value = figures[key]
            ok = value >= target if sense == ">=" else value <= target
            verdict = "meets" if ok else "BELOW"
            lines.append(f"{key:28s} {value:7.3f}  target {sense} {target:g}  {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the evaluations asked for and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family", choices=("synthetic", "phantoms", "both", "randomised"), default="both"
    )
    parser.add_argument("--lung", type=int, default=20, help="synthetic chest CTs (0: skip)")
    parser.add_argument("--brain", type=int, default=10, help="synthetic FLAIR studies (0: skip)")
    parser.add_argument("--mammo", type=int, default=50, help="synthetic 4-view studies (0: skip)")
    parser.add_argument("--phantom-lung", type=int, default=12, help="phantom chest CTs")
    parser.add_argument("--phantom-brain", type=int, default=6, help="phantom FLAIR studies")
    parser.add_argument("--phantom-mammo", type=int, default=40, help="phantom 4-view studies")
    parser.add_argument(
        "--randomised-lung", type=int, default=20, help="randomised chest CTs (held-out seeds)"
    )
    parser.add_argument(
        "--randomised-brain", type=int, default=10, help="randomised FLAIR studies (held-out seeds)"
    )
    parser.add_argument(
        "--phantom-brain-seed",
        type=int,
        default=SEEDS["phantoms"]["brain"],
        help="first phantom FLAIR seed (a second set: 6006)",
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    SEEDS["phantoms"]["brain"] = args.phantom_brain_seed
    families = ("synthetic", "phantoms") if args.family == "both" else (args.family,)
    counts = {
        "synthetic": (args.lung, args.brain, args.mammo),
        "phantoms": (args.phantom_lung, args.phantom_brain, args.phantom_mammo),
        "randomised": (args.randomised_lung, args.randomised_brain, 0),
    }
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="dicomnode-eval-") as tmp:
        work = Path(tmp)
        ctx = RunContext(device=args.device, work_dir=work)
        for family in families:
            figures[family] = {}
            for name, count, evaluate in zip(
                ("lung", "brain", "mammo"),
                counts[family],
                (evaluate_lung, evaluate_brain, evaluate_mammo),
                strict=True,
            ):
                if count > 0:
                    started = time.monotonic()
                    figures[family].update(evaluate(family, count, work / family / name, ctx))
                    figures[family][f"{name}_eval_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures, indent=2))
    for family in families:
        print(f"-- {family}" + ("" if family == "phantoms" else " (targets apply to phantoms)"))
        for line in _verdicts(figures[family]):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
