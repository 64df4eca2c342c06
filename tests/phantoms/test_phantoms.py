"""The independent phantom family: deterministic, valid DICOM, consistent truth, accepted by the
pipelines' checks and run end to end by each pipeline (shape of the results, not accuracy)."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmwrite
from pydicom.dataset import Dataset

from dicomnode.phantoms import BrainCase, brain_flair, chest_ct, mammography, truth_mask_for, write
from dicomnode.pipeline import PipelineInputs, RunContext, SeriesInput
from dicomnode.results import FindingKind, Laterality
from pipelines.brain_lesion import BrainLesionPipeline
from pipelines.common.dicomio import volume_from_datasets
from pipelines.lung_nodule import LungNodulePipeline
from pipelines.mammo_score import MammoScorePipeline

DCIODVFY = shutil.which("dciodvfy", path="/usr/bin") or shutil.which("dciodvfy")


def _bytes(datasets: list[Dataset]) -> list[bytes]:
    out = []
    for ds in datasets:
        buffer = io.BytesIO()
        dcmwrite(buffer, ds, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def _errors(ds: Dataset, folder: Path) -> list[str]:
    (path,) = write([ds], folder)
    assert DCIODVFY is not None, "dciodvfy is missing (scripts/setup.sh installs dicom3tools)"
    result = subprocess.run(
        [DCIODVFY, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    return [line for line in (result.stdout + result.stderr).splitlines() if "Error" in line]


def _inputs(files: list[Path], datasets: list[Dataset]) -> PipelineInputs:
    groups: dict[str, list[int]] = {}
    for n, ds in enumerate(datasets):
        groups.setdefault(str(ds.SeriesInstanceUID), []).append(n)
    series = tuple(
        SeriesInput(
            study_uid=str(datasets[0].StudyInstanceUID),
            series_uid=uid,
            files=tuple(files[n] for n in idx),
            modality=str(datasets[0].Modality),
        )
        for uid, idx in groups.items()
    )
    return PipelineInputs(series[0].study_uid, series)


@pytest.fixture(scope="module")
def chest():  # type: ignore[no-untyped-def]
    return chest_ct(11, matrix=128, slices=40, n_nodules=(3, 3), small_fraction=0.0)


@pytest.fixture(scope="module")
def head() -> BrainCase:
    return brain_flair(12, matrix=(64, 64), max_slices=20, n_lesions=(4, 4), plane="axial")


@pytest.fixture(scope="module")
def breasts():  # type: ignore[no-untyped-def]
    return mammography(13, shape=(240, 192), mass_probability=0.5)


def test_same_seed_same_bytes() -> None:
    assert _bytes(chest_ct(3, matrix=64, slices=20).datasets) == _bytes(
        chest_ct(3, matrix=64, slices=20).datasets
    )
    a, b = (brain_flair(3, matrix=(48, 48), max_slices=12) for _ in range(2))
    assert _bytes(a.datasets) == _bytes(b.datasets)
    assert _bytes(mammography(3, shape=(96, 80)).datasets) == _bytes(
        mammography(3, shape=(96, 80)).datasets
    )
    assert _bytes(mammography(4, shape=(96, 80)).datasets) != _bytes(
        mammography(3, shape=(96, 80)).datasets
    )


def test_dciodvfy_each_modality(tmp_path: Path, chest, head: BrainCase, breasts) -> None:  # type: ignore[no-untyped-def]
    assert _errors(chest.datasets[len(chest.datasets) // 2], tmp_path / "ct") == []
    assert _errors(head.datasets[5], tmp_path / "mr") == []
    for n, ds in enumerate(breasts.datasets):
        assert _errors(ds, tmp_path / f"mg{n}") == []


def test_nodules_sit_in_the_lungs(chest) -> None:  # type: ignore[no-untyped-def]
    volume = volume_from_datasets(chest.datasets)
    inverse = np.linalg.inv(volume.affine())
    assert len(chest.nodules) == 3
    for nodule in chest.nodules:
        i, j, k, _ = inverse @ np.array([*nodule.centre_mm, 1.0])
        k, j, i = (int(round(v)) for v in (k, j, i))
        reach = int(np.ceil((nodule.diameter_mm / 2 + 6) / float(chest.pixel_spacing_mm)))
        around = volume.array[
            k, max(j - reach, 0) : j + reach + 1, max(i - reach, 0) : i + reach + 1
        ]
        assert (around < -700).mean() > 0.1, (nodule, "no lung around the nodule")
        if nodule.diameter_mm >= 8:
            centre = volume.array[k, j - 1 : j + 2, i - 1 : i + 2].mean()
            assert centre > -750, (nodule, centre)


def test_lesions_lie_inside_the_head(head: BrainCase) -> None:
    volume = volume_from_datasets(head.datasets)
    truth = truth_mask_for(head, volume.geometry)
    assert truth.any()
    k, j, i = np.nonzero(truth)
    points = (volume.affine() @ np.stack([i, j, k, np.ones_like(i)]).astype(float))[:3].T
    assert np.all(np.linalg.norm(points / head.model.axes, axis=1) < 1.0)
    parenchyma = volume.array[(volume.array > 0.3 * volume.array.max())]
    assert np.median(volume.array[truth]) > np.median(parenchyma) * 0.9


@pytest.mark.parametrize("plane", ["sagittal", "coronal"])
def test_truth_mask_maps_tilted_planes(plane: str) -> None:
    seed = next(
        s
        for s in range(40, 80)
        if brain_flair(s, matrix=(16, 16), max_slices=8, plane=plane).tilt_deg > 3
    )
    case = brain_flair(seed, matrix=(64, 64), max_slices=24, n_lesions=(5, 5), plane=plane)
    volume = volume_from_datasets(case.datasets)
    by_uid = truth_mask_for(case, volume.geometry)
    elsewhere = dataclasses.replace(
        volume.geometry,
        sop_instance_uids=tuple(f"1.2.{n}" for n in range(len(volume.geometry.sop_instance_uids))),
    )
    painted = truth_mask_for(case, elsewhere)
    assert by_uid.shape == volume.array.shape and by_uid.any()
    assert (by_uid ^ painted).sum() <= 0.02 * (by_uid | painted).sum()
    # the mask marks bright voxels of the image itself (not a flipped or shifted copy)
    flipped = by_uid[::-1]
    assert volume.array[by_uid].mean() > volume.array[flipped & ~by_uid].mean()


def test_pipeline_checks_accept_phantoms(tmp_path: Path, chest, head: BrainCase, breasts) -> None:  # type: ignore[no-untyped-def]
    for pipeline, case, name in (
        (LungNodulePipeline(), chest, "ct"),
        (BrainLesionPipeline(), head, "mr"),
        (MammoScorePipeline(), breasts, "mg"),
    ):
        files = write(case.datasets, tmp_path / name)
        pipeline.check(_inputs(files, case.datasets))


def test_lung_pipeline_runs_on_a_phantom(tmp_path: Path) -> None:
    small = chest_ct(21, matrix=96, slices=24, n_nodules=(2, 2))
    files = write(small.datasets, tmp_path / "ct")
    result = LungNodulePipeline({"threshold": 0.0, "max_findings": 20}).run(
        _inputs(files, small.datasets), RunContext(device="cpu", work_dir=tmp_path)
    )
    assert len(result.findings.regions) <= 20
    assert all(r.kind is FindingKind.LUNG_NODULE for r in result.findings.regions)


def test_brain_pipeline_runs_on_a_phantom(tmp_path: Path, head: BrainCase) -> None:
    files = write(head.datasets, tmp_path / "mr")
    result = BrainLesionPipeline().run(
        _inputs(files, head.datasets), RunContext(device="cpu", work_dir=tmp_path)
    )
    mask = result.findings.masks[0]
    assert mask.array.shape == (len(head.datasets), 64, 64)
    assert truth_mask_for(head, mask.geometry).shape == mask.array.shape


def test_mammo_pipeline_runs_on_a_phantom(tmp_path: Path, breasts) -> None:  # type: ignore[no-untyped-def]
    files = write(breasts.datasets, tmp_path / "mg")
    result = MammoScorePipeline().run(
        _inputs(files, breasts.datasets), RunContext(device="cpu", work_dir=tmp_path)
    )
    sides = {c.laterality for c in result.findings.classifications}
    assert sides == {Laterality.LEFT, Laterality.RIGHT}
