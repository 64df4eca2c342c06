"""Run dciodvfy on generated objects; collect its warnings for the session summary."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

DCIODVFY = "/usr/bin/dciodvfy"
WARNINGS: dict[str, set[str]] = defaultdict(set)
"""Object kind -> distinct dciodvfy warning lines, printed at the end of the session."""


def write(ds: Dataset, path: Path) -> Path:
    """Save ``ds`` as a DICOM file (with file meta) and return the path."""
    ds.save_as(path, enforce_file_format=True)
    return path


def verify(ds: Dataset, tmp_path: Path, kind: str) -> list[str]:
    """Write ``ds``, run dciodvfy on it, fail on any error line; return the warnings."""
    if not Path(DCIODVFY).exists() and shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    path = write(ds, tmp_path / f"{kind}-{ds.SOPInstanceUID}.dcm")
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, f"dciodvfy found errors in {kind}:\n" + "\n".join(errors)
    warnings = [line for line in lines if line.startswith("Warning")]
    WARNINGS[kind].update(warnings)
    return warnings
