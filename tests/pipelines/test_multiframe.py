"""Enhanced (multi-frame) input: same volume, routing and results as the classic series.

The multi-frame images are Legacy Converted Enhanced CT/MR made by highdicom from the
synthetic series (planes, rescale and window in functional groups, as a scanner's Enhanced
image has them).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicomnode.pipeline import InputRefused, PipelineInputs
from dicomnode.pipeline.runner import run_on_files
from dicomnode.results import geometry_from_datasets
from dicomnode.results.sources import display_slice
from dicomnode.routing import SeriesFacts, compile_routes
from dicomnode.synthetic import brain_mr, chest_ct, write_study
from pipelines.brain_lesion import BrainLesionPipeline
from pipelines.common.dicomio import check_geometry, read_datasets, volume_from_datasets
from pipelines.lung_nodule import LungNodulePipeline
from testkit.enhanced import legacy_enhanced, without_pixel_data, without_plane_positions

from ..results.dicom_check import verify
from .conftest import series_inputs

#: The production-shaped example config: its routes for the two pipelines are the rules.
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "hospital.example.yaml"


def _save(image: Dataset, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "enhanced.dcm"
    image.save_as(path, enforce_file_format=True)
    return path


def _inputs(files: list[Path]) -> PipelineInputs:
    ds = dcmread(files[0], stop_before_pixels=True)
    series = series_inputs(files, [ds])
    return PipelineInputs(series.study_uid, (series,))


def _pair(root: Path, datasets: list[Dataset]) -> tuple[list[Path], Path]:
    """The classic series and its Legacy Converted Enhanced image (separate folders)."""
    files = write_study(datasets, root / "classic", shuffle_names=True)
    return files, _save(legacy_enhanced(datasets), root / "enhanced")


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """A classic chest CT series and its enhanced image."""
    return _pair(tmp_path_factory.mktemp("mf-ct"), chest_ct(9101, shape=(96, 96, 48)).datasets)


@pytest.fixture(scope="module")
def mr(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """A classic FLAIR series and its enhanced image."""
    return _pair(tmp_path_factory.mktemp("mf-mr"), brain_mr(9101, shape=(64, 64, 24)).datasets)


@pytest.mark.parametrize("which", ["ct", "mr"])
def test_same_volume_geometry_and_display(which: str, request: pytest.FixtureRequest) -> None:
    classic_files, enhanced_file = request.getfixturevalue(which)
    classic = volume_from_datasets(read_datasets(classic_files))
    enhanced = volume_from_datasets(read_datasets([enhanced_file]))
    assert enhanced.geometry.frame_numbers is not None
    np.testing.assert_allclose(enhanced.array, classic.array)  # rescale from functional groups
    np.testing.assert_allclose(enhanced.geometry.positions, classic.geometry.positions)
    np.testing.assert_allclose(enhanced.affine(), classic.affine())
    # the summary's slice: window (Frame VOI LUT) and rescale of the frame, not of the top level
    image = dcmread(enhanced_file)
    by_uid = {str(ds.SOPInstanceUID): ds for ds in read_datasets(classic_files)}
    k = len(classic.geometry.positions) // 2
    source = by_uid[classic.geometry.sop_instance_uids[k]]
    frame = enhanced.geometry.frame_numbers[k]
    np.testing.assert_array_equal(display_slice(image, frame), display_slice(source))


@pytest.mark.parametrize("which", ["ct", "mr"])
def test_routed_by_the_same_rules(which: str, request: pytest.FixtureRequest) -> None:
    classic_files, enhanced_file = request.getfixturevalue(which)
    config = yaml.safe_load(EXAMPLE.read_text())
    wanted = [r for r in config["routes"] if r["pipeline"] in ("lung_nodule", "brain_lesion")]
    routes = compile_routes(wanted, destinations=set(config["destinations"]))
    classic = SeriesFacts.from_header(
        dcmread(classic_files[0], stop_before_pixels=True), instances=len(classic_files)
    )
    enhanced = SeriesFacts.from_header(dcmread(enhanced_file, stop_before_pixels=True), instances=1)
    matched = [[r.name for r in routes if r.match(f).matched] for f in (classic, enhanced)]
    assert matched[0] == matched[1] and len(matched[0]) == 1, matched


def _findings(out: Path) -> dict:
    (findings,) = out.glob("findings-*.json")
    return json.loads(findings.read_text())


def _run(pipeline: str, path: Path, out: Path) -> dict:
    """``dicomnode run`` (no config: the built-in defaults) on ``path``; its findings."""
    run = subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", "run", pipeline, str(path)]
        + ["--out", str(out), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    return _findings(out)


def _run_here(pipeline: str, path: Path, out: Path) -> dict:
    """What :func:`_run` runs, in this process: the classic series is only the reference of
    the enhanced image's run (a ``dicomnode run`` process pays torch's start-up again)."""
    report = run_on_files(pipeline, path, out, device="cpu")
    assert len(report.jobs) == 1 and not report.failed and not report.refused, report.summary()
    return _findings(out)


@pytest.mark.parametrize(("pipeline", "which"), [("lung_nodule", "ct"), ("brain_lesion", "mr")])
def test_cli_run_on_enhanced(
    pipeline: str, which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    classic_files, enhanced_file = request.getfixturevalue(which)
    classic = _run_here(pipeline, classic_files[0].parent, tmp_path / "classic")
    enhanced = _run(pipeline, enhanced_file.parent, tmp_path / "enhanced")
    assert len(enhanced["regions"]) == len(classic["regions"]) > 0
    voxels = [f["masks"][0]["array"]["nonzero"] for f in (classic, enhanced)]
    assert abs(voxels[1] - voxels[0]) <= 0.1 * voxels[0], voxels

    source = dcmread(enhanced_file, stop_before_pixels=True)
    objects = [dcmread(p) for p in sorted((tmp_path / "enhanced").glob("*.dcm"))]
    assert sorted(ds.Modality for ds in objects) == ["OT", "SEG", "SR"]
    for ds in objects:
        verify(ds, tmp_path, f"enhanced-{pipeline}-{ds.Modality}")  # dciodvfy: 0 errors
    (seg,) = [ds for ds in objects if ds.Modality == "SEG"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    for group in seg.PerFrameFunctionalGroupsSequence:
        ref = group.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert 1 <= int(ref.ReferencedFrameNumber) <= int(source.NumberOfFrames)
    assert int(np.count_nonzero(seg.pixel_array)) == voxels[1]


PIPELINES = {"ct": LungNodulePipeline, "mr": BrainLesionPipeline}
WORDS_OF_CODE = ("Sequence", "Error", "attribute", "decompression", "PixelData")


def _refusal(which: str, image: Dataset, tmp_path: Path) -> str:
    path = _save(image, tmp_path / "damaged")
    with pytest.raises(InputRefused) as info:
        PIPELINES[which]().check(_inputs([path]))
    reason = str(info.value)
    assert "\n" not in reason and not any(word in reason for word in WORDS_OF_CODE), reason
    return reason


@pytest.mark.parametrize("which", ["ct", "mr"])
def test_refused_without_plane_positions(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    _, enhanced_file = request.getfixturevalue(which)
    damaged = without_plane_positions(dcmread(enhanced_file))
    reason = _refusal(which, damaged, tmp_path)
    assert reason.startswith("no usable image geometry: multi-frame image without plane positions")
    del damaged.PerFrameFunctionalGroupsSequence
    reason = _refusal(which, damaged, tmp_path)
    assert "multi-frame image without plane positions per frame" in reason


@pytest.mark.parametrize("which", ["ct", "mr"])
def test_refused_without_pixel_data(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    classic_files, enhanced_file = request.getfixturevalue(which)
    reason = _refusal(which, without_pixel_data(dcmread(enhanced_file)), tmp_path)
    assert reason == "no pixel data: 1 of 1 image(s) hold no pixels"
    # one classic image without pixels: said as such at check() and at run()
    files = [tmp_path / "classic" / p.name for p in classic_files]
    files[0].parent.mkdir()
    for src, dst in zip(classic_files, files, strict=True):
        dst.write_bytes(src.read_bytes())
    without_pixel_data(dcmread(files[3])).save_as(files[3])
    with pytest.raises(InputRefused, match=r"^no pixel data: 1 of \d+ image\(s\) hold no pixels$"):
        PIPELINES[which]().check(_inputs(files))
    with pytest.raises(InputRefused, match=r"^no pixel data"):
        volume_from_datasets(read_datasets(files))


def test_geometry_reasons_name_no_attributes(ct: tuple[list[Path], Path]) -> None:
    classic_files, _ = ct
    datasets = read_datasets(classic_files[:3])
    del datasets[1].ImagePositionPatient
    with pytest.raises(Exception, match=r"image without a patient position \(instance \d+\)$"):
        geometry_from_datasets(datasets)


def test_frames_of_several_orientations_are_refused(ct: tuple[list[Path], Path]) -> None:
    _, enhanced_file = ct
    image = dcmread(enhanced_file, stop_before_pixels=True)
    frame = image.PerFrameFunctionalGroupsSequence[5]
    frame.PlaneOrientationSequence = copy.deepcopy(
        image.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
    )
    frame.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    with pytest.raises(InputRefused, match="images of several orientations"):
        check_geometry([image])
