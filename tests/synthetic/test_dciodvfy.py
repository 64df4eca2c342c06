"""Every kind of generated instance passes dicom3tools' dciodvfy without errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pydicom.dataset import Dataset

from dicomnode.synthetic import BrainMR, ChestCT, Mammogram, mammography, write_study

DCIODVFY = shutil.which("dciodvfy", path="/usr/bin") or shutil.which("dciodvfy")


def _errors(dataset: Dataset, folder: Path) -> list[str]:
    (path,) = write_study([dataset], folder)
    assert DCIODVFY is not None, "dciodvfy is missing (scripts/setup.sh installs dicom3tools)"
    result = subprocess.run(
        [DCIODVFY, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if "Error" in line]


def test_ct(tmp_path: Path, ct: ChestCT) -> None:
    assert _errors(ct.datasets[10], tmp_path) == []


def test_mr_every_sequence(tmp_path: Path, brats: BrainMR) -> None:
    for sequence, series in brats.series.items():
        assert _errors(series[20], tmp_path / sequence.value) == []


def test_mg_every_view(tmp_path: Path, mammo: Mammogram) -> None:
    for view, ds in zip(mammo.views, mammo.datasets, strict=True):
        assert _errors(ds, tmp_path / view.value) == []


def test_mg_monochrome1_series_per_view(tmp_path: Path) -> None:
    study = mammography(1, shape=(96, 80), photometric="MONOCHROME1", series_per_view=True)
    for view, ds in zip(study.views, study.datasets, strict=True):
        assert _errors(ds, tmp_path / view.value) == []
