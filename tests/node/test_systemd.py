"""The systemd units parse cleanly (systemd-analyze verify reports nothing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
INSTALLED = "/opt/dicomnode/.venv/bin/dicomnode"


@pytest.mark.parametrize(
    ("unit", "instance"),
    [
        ("dicomnode.service", "dicomnode.service"),
        ("dicomnode-worker@.service", "dicomnode-worker@1.service"),
    ],
)
def test_unit_verifies_without_warnings(unit, instance, tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (apt-get install systemd)"
    text = (UNITS / unit).read_text()
    assert INSTALLED in text
    # Point ExecStart at this checkout's console script so verify can check it exists.
    here = str(Path(sys.executable).parent / "dicomnode")
    (tmp_path / instance).write_text(text.replace(INSTALLED, here))
    out = subprocess.run(
        [analyze, "verify", str(tmp_path / instance)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr
    for hardening in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=",
        "User=dicomnode",
        "Restart=on-failure",
    ):
        assert hardening in text
