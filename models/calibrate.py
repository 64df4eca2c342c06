"""Calibrate the demo bundles' scores (Platt scaling) on validation phantoms.

Usage (from the repository root, after ``models.train``; about 5 minutes on 2 cores)::

    nice -n 10 .venv/bin/python -m models.calibrate all

Runs each pipeline, with the bundle's raw scores, on validation studies of the training
generator (domain-randomised ``dicomnode.synthetic``, seeds
:data:`VALIDATION_SEED_BASE`: used neither in training nor in ``bench/evaluate.py``), labels
every score (lung: the detection hits a nodule; brain: the lesion overlaps a true lesion;
mammography: the breast has a mass), fits Platt scaling
(:func:`pipelines.common.calibration.fit_platt`) and writes ``dicomnode_calibration`` into the
bundle's ``configs/metadata.json`` with the default operating point. The second phantom family
(``dicomnode.phantoms``) is never used here: it measures whether the calibration holds off the
training family (``bench/evaluate.py`` prints its calibration error).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dicomnode.pipeline import PipelineInputs, RunContext, SeriesInput
from dicomnode.synthetic import write_study
from models.train import BUNDLES
from pipelines.common.base import BundlePipeline
from pipelines.common.calibration import METADATA_KEY, Calibration, fit_platt

log = logging.getLogger("models.calibrate")

VALIDATION_SEED_BASE = {"lung": 150_000, "brain": 250_000, "mammo": 350_000}
"""Validation seeds: training uses 100000+ n, 200000+ n, 300000+ n with n < 50000."""

COUNTS = {"lung": 16, "brain": 12, "mammo": 60}


@dataclass
class Samples:
    """Raw scores with their labels, and how many studies they came from."""

    scores: list[float]
    labels: list[bool]
    studies: int
    seeds: str


def _inputs(files: list[Path], datasets: list) -> PipelineInputs:
    first = datasets[0]
    series = SeriesInput(
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
        files=tuple(files),
        modality=str(first.Modality),
    )
    return PipelineInputs(series.study_uid, (series,))


def _run(pipeline: BundlePipeline, datasets: list, folder: Path, ctx: RunContext):  # noqa: ANN202
    files = write_study(datasets, folder)
    return pipeline.run(_inputs(files, datasets), ctx)


def lung_samples(count: int, work: Path, ctx: RunContext) -> Samples:
    """Every detection (threshold 0) of ``count`` CTs: hit (within the nodule's radius, at
    least 4 mm) or not; hits on nodules under 5 mm are left out, as in the evaluation."""
    from dicomnode.synthetic.randomize import random_chest_ct
    from pipelines.lung_nodule import LungNodulePipeline

    pipeline = LungNodulePipeline({"threshold": 0.0, "max_findings": 50})
    base = VALIDATION_SEED_BASE["lung"]
    samples = Samples([], [], count, f"{base}..{base + count - 1}")
    for n in range(count):
        ct = random_chest_ct(base + n)
        result = _run(pipeline, ct.datasets, work / f"ct{n}", ctx)
        for region in result.findings.regions:
            label: bool | None = False
            for nodule in ct.nodules:
                distance = float(np.linalg.norm(np.subtract(region.center, nodule.centre_mm)))
                if distance <= max(nodule.diameter_mm / 2, 4.0):
                    label = True if nodule.diameter_mm >= 5.0 else None
                    break
            if label is not None:
                samples.scores.append(float(region.score or 0.0))
                samples.labels.append(label)
    return samples


def brain_samples(count: int, work: Path, ctx: RunContext) -> Samples:
    """Every lesion found (operating point 0) in ``count`` FLAIR studies: does it overlap a
    true lesion (within 1 voxel of its centre)?"""
    from dicomnode.synthetic.random_mr import random_brain_mr
    from pipelines.brain_lesion import BrainLesionPipeline

    pipeline = BrainLesionPipeline({"threshold": 0.0})
    base = VALIDATION_SEED_BASE["brain"]
    samples = Samples([], [], count, f"{base}..{base + count - 1}")
    for n in range(count):
        mr = random_brain_mr(base + n)
        series = next(iter(mr.series.values()))
        result = _run(pipeline, list(series), work / f"mr{n}", ctx)
        truth = mr.lesion_mask  # [k, j, i] of the generator's geometry
        for region in result.findings.regions:
            index = np.round(mr.geometry.patient_to_index(*region.center)).astype(int)
            i, j, k = (int(v) for v in index)
            window = truth[max(k - 1, 0) : k + 2, max(j - 1, 0) : j + 2, max(i - 1, 0) : i + 2]
            samples.scores.append(float(region.score or 0.0))
            samples.labels.append(bool(window.any()))
    return samples


def mammo_samples(count: int, work: Path, ctx: RunContext) -> Samples:
    """The mass score of every breast of ``count`` 4-view studies: has it a mass?"""
    from dicomnode.synthetic.random_mg import random_mammography
    from pipelines.mammo_score import MammoScorePipeline

    pipeline = MammoScorePipeline()
    base = VALIDATION_SEED_BASE["mammo"]
    samples = Samples([], [], count, f"{base}..{base + count - 1}")
    for n in range(count):
        mg = random_mammography(base + n)
        result = _run(pipeline, list(mg.datasets), work / f"mg{n}", ctx)
        for c in result.findings.classifications:
            assert c.laterality is not None
            samples.scores.append(float(c.score or 0.0))
            samples.labels.append(mg.truth.has_mass(c.laterality.value))
    return samples


def _lung_point(calibration: Calibration, samples: Samples) -> float:
    """The calibrated threshold that lets through 1 false positive per scan on validation."""
    negatives = np.sort(
        calibration.apply([s for s, y in zip(samples.scores, samples.labels, strict=True) if not y])
    )[::-1]
    allowed = samples.studies  # 1 per scan
    if len(negatives) <= allowed:
        return 0.0
    return float(np.nextafter(negatives[allowed - 1], 1.0)) if allowed else 1.0


SAMPLERS: dict[str, Callable[[int, Path, RunContext], Samples]] = {
    "lung": lung_samples,
    "brain": brain_samples,
    "mammo": mammo_samples,
}


def calibrate(model: str, count: int, device: str = "cpu") -> Calibration | None:
    """Fit and write the calibration of ``model``'s bundle; returns it, or None (and removes
    the bundle's calibration) when the validation scores are all of one class."""
    meta_path = BUNDLES[model] / "configs" / "metadata.json"
    metadata = json.loads(meta_path.read_text())
    metadata.pop(METADATA_KEY, None)  # the pipelines below must see raw scores
    meta_path.write_text(json.dumps(metadata, indent=4) + "\n")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dicomnode-calibrate-") as tmp:
        ctx = RunContext(device=device, work_dir=Path(tmp))
        samples = SAMPLERS[model](count, Path(tmp), ctx)
    if not samples.labels or all(samples.labels) or not any(samples.labels):
        log.warning(
            "%s: %d scores, %d positive on %s: nothing to fit, the bundle stays uncalibrated "
            "(raw scores, threshold 0.5)",
            model,
            len(samples.labels),
            sum(samples.labels),
            samples.seeds,
        )
        return None
    a, b = fit_platt(samples.scores, samples.labels)
    fitted_on = (
        f"dicomnode.synthetic randomised validation seeds {samples.seeds}: "
        f"{len(samples.scores)} scores, {sum(samples.labels)} positive"
    )
    calibration = Calibration(a, b, 0.5, "", fitted_on)
    if model == "lung":
        point = _lung_point(calibration, samples)
        meaning = "1 false positive per scan on the validation studies"
    elif model == "brain":
        point, meaning = 0.5, "a lesion is reported when more likely true than not"
    else:
        point, meaning = 0.5, "not used: every breast gets its mass probability"
    calibration = Calibration(a, b, round(point, 4), meaning, fitted_on)
    metadata[METADATA_KEY] = calibration.to_metadata()
    meta_path.write_text(json.dumps(metadata, indent=4) + "\n")
    log.info("%s calibrated in %.0f s: %s", model, time.monotonic() - started, calibration)
    return calibration


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=[*BUNDLES, "all"])
    parser.add_argument("--count", type=int, help="validation studies (default per model)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    names = list(BUNDLES) if args.model == "all" else [args.model]
    for name in names:
        calibration = calibrate(name, args.count or COUNTS[name])
        entry = calibration.to_metadata() if calibration is not None else None
        print(json.dumps({"model": name, "calibration": entry}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
