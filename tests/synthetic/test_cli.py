"""python -m dicomnode.synthetic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from dicomnode.synthetic._cli import main


@pytest.mark.parametrize(
    ("kind", "shape", "count"),
    [("ct", "48x48x16", 16), ("mr", "48x48x16", 16), ("brats", "48x48x16", 64), ("mg", "96x80", 4)],
)
def test_writes_study_and_summary(
    kind: str, shape: str, count: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / kind
    assert main([kind, "--seed", "3", "--out", str(out), "--shape", shape,
                 "--truth", str(tmp_path / "truth.json")]) == 0  # fmt: skip
    files = sorted(out.iterdir())
    assert len(files) == count
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{kind} seed=3: {count} instances")
    name = str(pydicom.dcmread(files[0], stop_before_pixels=True).PatientName)
    assert name.startswith("SYNTHETIC^") and name not in lines[0]
    assert json.loads((tmp_path / "truth.json").read_text()) is not None


def test_bad_shape_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ct", "--out", str(tmp_path), "--shape", "12x12"]) == 2
    assert "--shape" in capsys.readouterr().err


def test_module_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dicomnode.synthetic", "mg", "--seed", "1", "--out", str(tmp_path),
         "--shape", "64x48", "--density", "D"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert "density D" in result.stdout and len(list(tmp_path.iterdir())) == 4
