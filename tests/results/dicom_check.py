"""Run dciodvfy on generated objects; collect its warnings for the session summary."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from pydicom.dataset import Dataset

DCIODVFY = shutil.which("dciodvfy", path="/usr/bin") or shutil.which("dciodvfy")
WARNINGS: dict[str, set[str]] = defaultdict(set)
"""Object kind -> distinct dciodvfy warning lines, printed at the end of the session."""


def write(ds: Dataset, path: Path) -> Path:
    """Save ``ds`` as a DICOM file (with file meta) and return the path."""
    ds.save_as(path, enforce_file_format=True)
    return path


def verify(ds: Dataset, tmp_path: Path, kind: str) -> list[str]:
    """Write ``ds``, run dciodvfy on it, fail on any error line; return the warnings."""
    assert DCIODVFY is not None, "dciodvfy is missing (scripts/setup.sh installs dicom3tools)"
    path = write(ds, tmp_path / f"{kind}-{ds.SOPInstanceUID}.dcm")
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, f"dciodvfy found errors in {kind}:\n" + "\n".join(errors)
    warnings = [line for line in lines if line.startswith("Warning")]
    WARNINGS[kind].update(warnings)
    return warnings
