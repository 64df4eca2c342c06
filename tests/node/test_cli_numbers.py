"""Numbers on the command line that no database row can have: one line, exit 2, no traceback
(an SQLite integer overflow before)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from dicomnode.store.db import open_database


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_out_of_range_numbers_are_usage_errors(tmp_path: Path):
    config = tmp_path / "dicomnode.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    open_database(f"sqlite:///{tmp_path / 'data' / 'state.db'}").dispose()
    for bad in ("99999999999999999999", "9223372036854775808", "0", "-1", "1.5", "9" * 5000):
        out = _cli("retry", bad, "-c", str(config))
        assert out.returncode == 2, (bad, out.stderr)
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert "must be a whole number from 1 to 9223372036854775807" in out.stderr
    out = _cli("retry", "9223372036854775807", "-c", str(config))
    assert (out.returncode, out.stderr) == (1, "dicomnode: error: no job 9223372036854775807\n")
    for bad in ("99999999999999999999", "-1", "1000001"):
        out = _cli("status", "--audit", bad, "-c", str(config))
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert "--audit: must be a whole number from 0 to 1000000" in out.stderr
    out = _cli("status", "--audit", "1000000", "-c", str(config))
    assert out.returncode == 0 and out.stdout == "no studies\n"
