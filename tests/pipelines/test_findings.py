"""Findings land where the ground truth is (held-out seeds, the shipped demo weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dicomnode.pipeline import RunContext
from dicomnode.results import Laterality
from pipelines.brain_lesion import BrainLesionPipeline
from pipelines.lung_nodule import LungNodulePipeline
from pipelines.mammo_score import MammoScorePipeline

from .conftest import Written


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    return RunContext(device="cpu", work_dir=tmp_path_factory.mktemp("work"))


def test_lung_nodules_found_at_their_centres(ct_study: Written, ctx: RunContext) -> None:
    pipeline = LungNodulePipeline({"threshold": 0.3})
    result = pipeline.run(ct_study.inputs, ctx)
    regions = result.findings.regions
    assert len(result.model_sha256) == 64
    spacing = max(
        *ct_study.study.geometry.pixel_spacing_mm, ct_study.study.geometry.slice_spacing_mm
    )
    for nodule in ct_study.study.nodules:
        distances = [np.linalg.norm(np.subtract(r.center, nodule.centre_mm)) for r in regions]
        assert distances, "no nodule reported"
        best = regions[int(np.argmin(distances))]
        assert min(distances) <= 2 * spacing, (nodule, best)
        assert abs(best.diameter_mm - nodule.diameter_mm) <= 0.5 * nodule.diameter_mm + spacing
    mask = result.findings.masks[0]
    for nodule in ct_study.study.nodules:
        i, j, k = nodule.voxel
        assert mask.array[k, j, i]


def test_models_stay_loaded_between_runs(ct_study: Written, ctx: RunContext) -> None:
    pipeline = LungNodulePipeline()
    pipeline.run(ct_study.inputs, ctx)
    model = pipeline.model("cpu")
    pipeline.run(ct_study.inputs, ctx)
    assert pipeline.model("cpu") is model


def test_brain_lesions_overlap_the_truth(mr_study: Written, ctx: RunContext) -> None:
    result = BrainLesionPipeline().run(mr_study.inputs, ctx)
    mask = result.findings.masks[0].array
    truth = mr_study.study.lesion_mask
    dice = 2 * np.sum(mask & truth) / (mask.sum() + truth.sum())
    assert dice >= 0.6, dice
    assert len(result.findings.regions) >= 1
    total = sum(r.volume_ml or 0 for r in result.findings.regions)
    expected = sum(lesion.volume_ml for lesion in mr_study.study.lesions)
    assert total == pytest.approx(expected, rel=0.5)


def test_brain_accepts_study_level_flair_role(mr_study: Written, ctx: RunContext) -> None:
    series = mr_study.inputs.series[0]
    from dicomnode.pipeline import PipelineInputs, SeriesInput

    flair = SeriesInput(**{**series.__dict__, "role": "flair"})
    inputs = PipelineInputs(series.study_uid, (flair,))
    BrainLesionPipeline().check(inputs)


def test_mammo_laterality_and_mass_side(mg_study: Written, ctx: RunContext) -> None:
    result = MammoScorePipeline().run(mg_study.inputs, ctx)
    by_side = {c.laterality: c for c in result.findings.classifications}
    assert set(by_side) == {Laterality.LEFT, Laterality.RIGHT}
    for side, c in by_side.items():
        images = [
            ds for ds in mg_study.study.datasets if str(ds.SOPInstanceUID) in c.sop_instance_uids
        ]
        assert len(images) == 2
        assert {ds.ImageLaterality for ds in images} == {side.value}
        assert c.density is not None and c.score is not None
    assert by_side[Laterality.LEFT].score > by_side[Laterality.RIGHT].score


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: (size, mtime in ns)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("pipeline", "study"),
    [
        (LungNodulePipeline, "ct_study"),
        (BrainLesionPipeline, "mr_study"),
        (MammoScorePipeline, "mg_study"),
    ],
    ids=["lung", "brain", "mammo"],
)
def test_work_dir_and_sources_untouched(
    pipeline: type, study: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The shipped pipelines need no scratch space and never write beside their inputs."""
    written: Written = request.getfixturevalue(study)
    sources = written.files[0].parent
    before = _snapshot(sources)
    work = tmp_path / "work"
    work.mkdir()
    pipeline().run(written.inputs, RunContext(device="cpu", work_dir=work))
    assert list(work.iterdir()) == []
    assert _snapshot(sources) == before
