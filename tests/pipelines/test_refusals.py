"""Each refusal reason is given for its bad input, before any heavy work."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from dicomnode.pipeline import InputRefused, PipelineInputs, RunContext, SeriesInput
from dicomnode.synthetic import chest_ct, mammography, write_study
from pipelines.brain_lesion import BrainLesionPipeline
from pipelines.common.dicomio import check_decode_budget, decode_pixels, read_headers
from pipelines.lung_nodule import LungNodulePipeline
from pipelines.mammo_score import MammoScorePipeline
from testkit.bombs import BOMB_KINDS, PIPELINES, bomb_study, rle_bomb

from .conftest import Written, series_inputs


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


def test_missing_brats_roles(mr_study: Written, official: Path) -> None:
    flair = SeriesInput(**{**mr_study.inputs.series[0].__dict__, "role": "flair"})
    inputs = PipelineInputs(flair.study_uid, (flair,))
    pipeline = BrainLesionPipeline({"bundle": str(official / "brats_mri_segmentation")})
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
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\x00" * 60 + b"garbage" * 24])  # under 32:1
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.save_as(files[3], enforce_file_format=True)
    with pytest.raises(InputRefused, match="undecodable pixel data"):
        LungNodulePipeline().run(_single(files), _ctx(tmp_path))


def test_a_syntax_without_a_decoder_is_refused_in_one_line() -> None:
    """12-bit lossy JPEG (pydicom's ``JPEG-lossy.dcm``): neither GDCM nor Pillow decodes it;
    pydicom lists the missing plugins on lines of their own, the refusal is one line."""
    ds = dcmread(get_testdata_file("JPEG-lossy.dcm"))
    with pytest.raises(InputRefused, match="undecodable pixel data: .*12-bit") as refused:
        decode_pixels(ds)
    assert "\n" not in refused.value.reason


def test_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(b"hello")
    series = SeriesInput("1.2", "1.2.3", (path,), modality="CT")
    with pytest.raises(InputRefused, match="unreadable DICOM file x.dcm"):
        LungNodulePipeline().check(PipelineInputs("1.2", (series,)))


_CLASSES = {
    "lung_nodule": LungNodulePipeline,
    "brain_lesion": BrainLesionPipeline,
    "mammo_score": MammoScorePipeline,
}
_BOMB_REASONS = {
    "declared": r"decoded size \d+ bytes exceeds the budget",
    "rle": r"decoded size \d+ bytes is more than 32 times the \d+ bytes stored .*bomb",
}


@pytest.mark.parametrize("kind", BOMB_KINDS)
@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_decode_bombs_are_refused_before_decoding(
    name: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The declared 65535 x 65535 image and an RLE bomb (hundreds of MB declared in a few MB),
    in a study the pipeline would otherwise take, are refused by check and by run, and no
    pixel data is decoded on the way."""
    files = bomb_study(name, kind, tmp_path / "study")
    assert sum(p.stat().st_size for p in files) < 16 * 1024**2
    declared = check_decode_budget(read_headers(files), 2**62, max_ratio=2**62)
    assert declared > (200 * 1024**2 if kind == "rle" else 2 * 1024**3)

    def no_decoding(ds: Dataset) -> None:
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(Dataset, "pixel_array", property(no_decoding))
    pipeline = _CLASSES[name]()
    with pytest.raises(InputRefused, match=_BOMB_REASONS[kind]):
        pipeline.check(_single(files))
    with pytest.raises(InputRefused, match=_BOMB_REASONS[kind]):
        pipeline.run(_single(files), _ctx(tmp_path))


def test_compression_ratio_is_configurable(tmp_path: Path) -> None:
    files = _ct_files(tmp_path)
    for path in files:
        rle_bomb(path, 512)  # 512 KiB declared, 8 KiB stored: 64:1
    with pytest.raises(InputRefused, match="more than 32 times"):
        LungNodulePipeline().check(_single(files))
    LungNodulePipeline({"max_compression_ratio": 100}).check(_single(files))
    with pytest.raises(ValueError, match="max_compression_ratio must be >= 1, got 0.5"):
        LungNodulePipeline({"max_compression_ratio": 0.5}).check(_single(files))
