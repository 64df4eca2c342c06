"""run_on_files end to end: scan, group, check, run, encode, write."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dicomnode.pipeline import PipelineUnavailable
from dicomnode.pipeline.runner import run_on_files
from dicomnode.synthetic import mammography, write_study

from .conftest import Written


def test_lung_end_to_end_writes_readable_sr_seg_summary(ct_study: Written, tmp_path: Path) -> None:
    (ct_study.files[0].parent / "README.txt").write_text("not dicom")
    out = tmp_path / "out" / "nested"
    report = run_on_files("lung_nodule", ct_study.files[0].parent, out, options={"threshold": 0.3})
    assert report.device == "cpu"
    assert len(report.jobs) == 1 and report.jobs[0].refused is None
    assert [p.name for p in report.skipped] == ["README.txt"]
    modalities = sorted(dcmread(p).Modality for p in report.files)
    assert modalities == ["OT", "SEG", "SR"]
    assert all(p.parent == out for p in report.files)
    assert "lung_nodule" in report.summary()


def test_study_level_mammo_and_chosen_outputs(tmp_path: Path) -> None:
    mg = mammography(31, series_per_view=True)
    write_study(mg.datasets, tmp_path / "in")
    report = run_on_files("mammo_score", tmp_path / "in", tmp_path / "out", outputs=["sr"])
    assert len(report.jobs) == 1  # four series, one study
    assert [dcmread(p).Modality for p in report.files] == ["SR"]


def test_refusal_is_reported_not_raised(mr_study: Written, tmp_path: Path) -> None:
    report = run_on_files("lung_nodule", mr_study.files[0].parent, tmp_path / "out")
    assert report.files == ()
    assert report.refused[0].refused == "wrong modality: expected CT, got MR"


def test_unknown_pipeline(tmp_path: Path) -> None:
    with pytest.raises(PipelineUnavailable, match="unknown pipeline 'nope'"):
        run_on_files("nope", tmp_path, tmp_path / "out")


def test_contract_package_stays_torch_free() -> None:
    import subprocess
    import sys

    code = "import sys, dicomnode.pipeline; print('torch' in sys.modules, 'monai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
