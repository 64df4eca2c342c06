"""The sanitizer of copied source attributes, and results made from quirky real-world headers.

The end-to-end case is the one the issue names: a FLAIR series with ``PatientSex '0000'`` and CS
values with trailing NULs yields SEG, SR and summary that pass dciodvfy with 0 errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files

from dicomnode.results.sanitize import UnrepairableHeader, sanitize_sources
from dicomnode.synthetic import brain_mr, write_study
from tests.results.dicom_check import DCIODVFY


def _ct() -> pydicom.Dataset:
    return dcmread(get_testdata_file("CT_small.dcm"))


def test_invalid_values_are_emptied_dropped_trimmed_or_cut_never_in_the_source():
    ds = _ct()
    ds.PatientSex = "0000"  # Type 2, not M/F/O: emptied
    ds.PatientAge = "forty"  # Type 3, not an AS: dropped
    ds.StudyDescription = "HEAD\x00\x00"  # trailing NULs: trimmed
    ds.AccessionNumber = "A" * 30  # SH over 16: cut
    ds.QualityControlSubject = "MAYBE"  # Type 3 enumerated: dropped
    result = sanitize_sources([ds])
    assert result.repaired == (
        "AccessionNumber",
        "PatientAge",
        "PatientSex",
        "QualityControlSubject",
        "StudyDescription",
    )
    (copy,) = result.datasets
    assert copy.PatientSex in (None, "") and "PatientSex" in copy
    assert "PatientAge" not in copy and "QualityControlSubject" not in copy
    assert copy.StudyDescription == "HEAD" and copy.AccessionNumber == "A" * 16
    # The source is untouched.
    assert ds.PatientSex == "0000" and ds.StudyDescription == "HEAD\x00\x00"


def test_valid_headers_are_left_alone():
    assert sanitize_sources([_ct()]).repaired == ()


def test_an_invalid_type_1_attribute_cannot_be_repaired():
    ds = _ct()
    ds["StudyInstanceUID"].value = "1.2.abc"
    with pytest.raises(UnrepairableHeader, match="StudyInstanceUID") as err:
        sanitize_sources([ds])
    assert err.value.keyword == "StudyInstanceUID"
    assert "1.2.abc" not in str(err.value)  # never the value


def test_pydicoms_real_world_files_sanitize_without_error():
    """Every readable file of pydicom's corpus sanitizes, and sanitizing again changes nothing."""
    seen = repaired = 0
    for path in get_testdata_files("*.dcm"):
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds:
            continue
        seen += 1
        first = sanitize_sources([ds])
        repaired += bool(first.repaired)
        assert sanitize_sources(first.datasets).repaired == (), path
    assert seen > 50 and repaired >= 1  # ExplVR_BigEnd.dcm has ACR-NEMA style dates


def _all_text(ds: pydicom.Dataset) -> str:
    """Every text value of ``ds``, nested sequences included (not the pixels)."""
    texts: list[str] = []
    ds.walk(
        lambda _ds, elem: (
            texts.append(str(elem.value)) if elem.VR in ("LT", "ST", "UT", "LO") else None
        )
    )
    return "\n".join(texts)


def _quirky_flair(directory: Path) -> list[Path]:
    mr = brain_mr(9301, shape=(64, 64, 24))
    for ds in mr.datasets:
        ds.PatientSex = "0000"
        ds.StudyDescription = "BRAIN ROUTINE\x00"
        ds.AccessionNumber = "ACC42\x00\x00"
        ds.StudyID = "STUDY-ID-LONGER-THAN-SH-ALLOWS"
    return write_study(mr.datasets, directory)


def test_quirky_flair_through_dicomnode_run_yields_valid_results(tmp_path):
    _quirky_flair(tmp_path / "mr")
    out = subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", "run", "brain_lesion", str(tmp_path / "mr"),
         "--out", str(tmp_path / "out"), "--device", "cpu", "--outputs", "seg,sr,summary"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # (pydicom itself strips the trailing NULs of text values when it reads the files)
    assert "source attributes repaired: PatientSex, StudyID" in out.stdout
    results = sorted((tmp_path / "out").glob("*.dcm"))
    assert sorted(dcmread(p).Modality for p in results) == ["OT", "SEG", "SR"]
    assert DCIODVFY is not None, "dciodvfy is missing (scripts/setup.sh installs dicom3tools)"
    for path in results:
        ds = dcmread(path)
        assert ds.PatientSex in (None, "") and ds.AccessionNumber == "ACC42"
        # The shipped weights are demo weights: every object says so (issue 11 item 6).
        assert ds.SeriesDescription.endswith("DEMO WEIGHTS RESEARCH USE ONLY")
        assert "trained on synthetic phantoms" in _all_text(ds), ds.Modality
        check = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (check.stdout + check.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], f"{ds.Modality}: {errors}"
    (findings,) = (tmp_path / "out").glob("findings-*.json")
    assert "kinds" in json.loads(findings.read_text())
