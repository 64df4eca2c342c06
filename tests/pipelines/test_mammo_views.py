"""A screening study as a modality sends it: more than the four views.

Beside the four For Presentation views a real study holds the FOR PROCESSING images,
tomosynthesis (multi-frame), spot and magnification views and other projections. The model
reads the four views; the rest is left out (and not referenced by the results), not a reason
to refuse the study.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicomnode.pipeline import PipelineInputs
from dicomnode.pipeline.execute import execute
from dicomnode.synthetic import mammography, write_study
from pipelines.mammo_score import MammoScorePipeline
from pipelines.mammo_score.views import FOR_PROCESSING_CLASS

from .conftest import series_inputs


def _copy(ds: Dataset, n: int) -> Dataset:
    out = copy.deepcopy(ds)
    out.SOPInstanceUID = out.file_meta.MediaStorageSOPInstanceUID = f"{ds.SOPInstanceUID}.8{n}"
    out.InstanceNumber = 800 + n
    return out


def _for_processing(ds: Dataset, n: int) -> Dataset:
    out = _copy(ds, n)
    out.PresentationIntentType = "FOR PROCESSING"
    out.SOPClassUID = out.file_meta.MediaStorageSOPClassUID = FOR_PROCESSING_CLASS
    return out


def _extras(views: list[Dataset]) -> list[Dataset]:
    """4 FOR PROCESSING copies, a 2-frame image, a spot compression view, an XCCL view."""
    extras = [_for_processing(ds, n) for n, ds in enumerate(views)]
    frames = _copy(views[0], 10)
    frames.NumberOfFrames = 2
    frames.PixelData = frames.PixelData * 2
    spot = _copy(views[1], 11)
    modifier = Dataset()
    modifier.CodeValue, modifier.CodingSchemeDesignator = "399055006", "SCT"
    modifier.CodeMeaning = "Spot Compression"
    spot.ViewModifierCodeSequence = [modifier]
    xccl = _copy(views[2], 12)
    xccl.ViewPosition = "XCCL"
    return extras + [frames, spot, xccl]


def _inputs(files: list[Path], datasets: list[Dataset]) -> PipelineInputs:
    series = series_inputs(files, datasets)
    return PipelineInputs(series.study_uid, (series,))


def _run(datasets: list[Dataset], directory: Path):
    files = write_study(datasets, directory / "in")
    return execute(
        MammoScorePipeline(),
        _inputs(files, datasets),
        directory / "out",
        device="cpu",
        outputs=["sr", "summary"],
    )


@pytest.fixture(scope="module")
def views() -> list[Dataset]:
    return mammography(15, shape=(256, 208), masses={"R": 1}).datasets


def test_extra_images_are_left_out_not_refused(views: list[Dataset], tmp_path: Path) -> None:
    clean = _run(copy.deepcopy(views), tmp_path / "clean")
    full = _run(copy.deepcopy(views) + _extras(views), tmp_path / "full")
    assert full.refused is None and clean.refused is None
    assert full.findings is not None and clean.findings is not None
    # the same four views read: the same scores, densities and references
    assert full.findings.classifications == clean.findings.classifications
    four = {str(ds.SOPInstanceUID) for ds in views}
    (sr,) = [f for f in full.files if f.sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.88")]
    report = dcmread(tmp_path / "full" / "out" / sr.name)
    evidence = report.CurrentRequestedProcedureEvidenceSequence
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for study in evidence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert referenced == four


def test_only_for_processing_images_are_refused_with_what_was_left_out(
    views: list[Dataset], tmp_path: Path
) -> None:
    raw = [_for_processing(ds, n) for n, ds in enumerate(views)]
    run = _run(raw, tmp_path)
    assert run.refused == (
        "missing views: RCC, LCC, RMLO, LMLO (found none; left out: 4 FOR PROCESSING)"
    )


def test_one_breast_is_scored_alone(views: list[Dataset], tmp_path: Path) -> None:
    """After a mastectomy the study holds LCC and LMLO only: the left breast is scored."""
    left = [ds for ds in copy.deepcopy(views) if ds.ImageLaterality == "L"]
    run = _run(left, tmp_path)
    assert run.refused is None and run.findings is not None
    assert [c.laterality.value for c in run.findings.classifications] == ["L"]


def test_a_breast_with_one_view_is_refused(views: list[Dataset], tmp_path: Path) -> None:
    three = [
        ds
        for ds in copy.deepcopy(views)
        if not (ds.ImageLaterality == "R" and ds.ViewPosition == "MLO")
    ]
    run = _run(three, tmp_path)
    assert run.refused == "missing views: RMLO (found LCC, LMLO, RCC)"
