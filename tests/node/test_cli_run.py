"""``dicomnode run PIPELINE PATH --out DIR`` on generated files."""

from __future__ import annotations

import subprocess
import sys

from pydicom import dcmread

from dicomnode.synthetic import brain_mr, chest_ct, write_study


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_run_writes_results_and_refuses_wrong_input(tmp_path):
    ct = chest_ct(9101, shape=(96, 96, 48))
    write_study(ct.datasets, tmp_path / "ct")
    out = _run(
        "lung_nodule", str(tmp_path / "ct"), "--out", str(tmp_path / "out"), "--device", "cpu"
    )
    assert out.returncode == 0, out.stderr
    written = sorted((tmp_path / "out").glob("*.dcm"))
    assert len(list((tmp_path / "out").glob("findings-*.json"))) == 1  # kept beside them
    modalities = sorted(dcmread(p).Modality for p in written)
    assert "SR" in modalities and len(written) >= 2
    study = ct.datasets[0].StudyInstanceUID
    assert all(dcmread(p).StudyInstanceUID == study for p in written)

    mr = brain_mr(9101, shape=(64, 64, 24))
    write_study(mr.datasets, tmp_path / "mr")
    out = _run("lung_nodule", str(tmp_path / "mr"), "--out", str(tmp_path / "out2"))
    assert out.returncode == 1
    assert "REFUSED" in out.stdout and "modality" in out.stdout

    out = _run("lung_nodule", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "no such file" in out.stderr
