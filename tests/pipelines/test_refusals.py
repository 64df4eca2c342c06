"""Each refusal reason is given for its bad input, before any heavy work."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from dicomnode.pipeline import InputRefused, PipelineInputs, RunContext, SeriesInput
from dicomnode.synthetic import chest_ct, mammography, write_study
from pipelines.brain_lesion import BrainLesionPipeline
from pipelines.lung_nodule import LungNodulePipeline
from pipelines.mammo_score import MammoScorePipeline

from .conftest import Written, series_inputs

OFFICIAL_BRATS = Path(__file__).resolve().parents[3] / "shared/monai-bundles/brats_mri_segmentation"


def _ctx(tmp_path: Path) -> RunContext:
    return RunContext(device="cpu", work_dir=tmp_path)


def _single(files: list[Path]) -> PipelineInputs:
    ds = dcmread(files[0], stop_before_pixels=True)
    series = series_inputs(files, [ds])
    return PipelineInputs(series.study_uid, (series,))


def _ct_files(tmp_path: Path, slices: int = 20) -> list[Path]:
    ct = chest_ct(21, shape=(48, 48, slices), n_nodules=0)
    return write_study(ct.datasets, tmp_path / "ct")


def test_wrong_modality(mr_study: Written) -> None:
    with pytest.raises(InputRefused, match="wrong modality: expected CT, got MR"):
        LungNodulePipeline().check(mr_study.inputs)


def test_wrong_modality_brain(ct_study: Written) -> None:
    with pytest.raises(InputRefused, match="wrong modality: expected MR, got CT"):
        BrainLesionPipeline().check(ct_study.inputs)


def test_too_few_slices(tmp_path: Path) -> None:
    inputs = _single(_ct_files(tmp_path, slices=8))
    with pytest.raises(InputRefused, match="too few slices: 8"):
        LungNodulePipeline().check(inputs)


def test_missing_views(tmp_path: Path) -> None:
    mg = mammography(22)
    files = write_study(mg.datasets[:3], tmp_path)
    inputs = _single(files)
    with pytest.raises(InputRefused, match="missing views: LMLO"):
        MammoScorePipeline().check(inputs)


def test_missing_brats_roles(mr_study: Written) -> None:
    flair = SeriesInput(**{**mr_study.inputs.series[0].__dict__, "role": "flair"})
    inputs = PipelineInputs(flair.study_uid, (flair,))
    pipeline = BrainLesionPipeline({"bundle": str(OFFICIAL_BRATS)})
    if not OFFICIAL_BRATS.is_dir():
        pytest.skip("official BraTS config not present")
    with pytest.raises(InputRefused, match=r"missing inputs: role\(s\) t1c, t1, t2"):
        pipeline.check(inputs)


def test_decode_budget_declared_65535_square(tmp_path: Path) -> None:
    files = _ct_files(tmp_path)
    ds = dcmread(files[0])
    ds.Rows = ds.Columns = 65535
    ds.save_as(files[0])
    with pytest.raises(InputRefused, match="decoded size .* exceeds the budget"):
        LungNodulePipeline().check(_single(files))


def test_decode_budget_configured(tmp_path: Path) -> None:
    files = _ct_files(tmp_path)
    with pytest.raises(InputRefused, match="exceeds the budget of 1000 bytes"):
        LungNodulePipeline({"decode_budget_bytes": 1000}).check(_single(files))


def test_truncated_pixel_data(tmp_path: Path) -> None:
    files = _ct_files(tmp_path)
    ds = dcmread(files[5])
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(files[5])
    pipeline = LungNodulePipeline()
    pipeline.check(_single(files))  # headers are fine
    with pytest.raises(InputRefused, match="undecodable pixel data: PixelData holds"):
        pipeline.run(_single(files), _ctx(tmp_path))


def test_undecodable_compressed_pixel_data(tmp_path: Path) -> None:
    files = _ct_files(tmp_path)
    ds = dcmread(files[3])
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\x00" * 60 + b"garbage" * 4])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.save_as(files[3], enforce_file_format=True)
    with pytest.raises(InputRefused, match="undecodable pixel data"):
        LungNodulePipeline().run(_single(files), _ctx(tmp_path))


def test_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(b"hello")
    series = SeriesInput("1.2", "1.2.3", (path,), modality="CT")
    with pytest.raises(InputRefused, match="unreadable DICOM file x.dcm"):
        LungNodulePipeline().check(PipelineInputs("1.2", (series,)))
