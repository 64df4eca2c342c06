"""Numbers on the command line that no database row can have: one line, exit 2, no traceback
(an SQLite integer overflow before).

The first value of each command goes through a ``dicomnode`` process; the others through the
same entry point in this process (a process start costs a second, and the answer is the same
code's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dicomnode.cli import main
from dicomnode.store.db import open_database


@dataclass(frozen=True)
class Ran:
    """What a ``dicomnode`` command answered."""

    returncode: int
    stdout: str
    stderr: str


def _process(*args: str) -> Ran:
    run = subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", *args], capture_output=True, text=True, timeout=60
    )
    return Ran(run.returncode, run.stdout, run.stderr)


def _in_process(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    umask = os.umask(0o022)  # main() makes the process umask private: put it back after
    os.umask(umask)
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.umask(umask)
    out = capsys.readouterr()
    return Ran(code, out.out, out.err)


def test_out_of_range_numbers_are_usage_errors(tmp_path: Path, capsys):
    config = tmp_path / "dicomnode.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    open_database(f"sqlite:///{tmp_path / 'data' / 'state.db'}").dispose()

    def cli(first: bool, *args: str) -> Ran:
        return _process(*args) if first else _in_process(capsys, *args)

    retry_bad = ("99999999999999999999", "9223372036854775808", "0", "-1", "1.5", "9" * 5000)
    for n, bad in enumerate(retry_bad):
        out = cli(n == 0, "retry", bad, "-c", str(config))
        assert out.returncode == 2, (bad, out.stderr)
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert "must be a whole number from 1 to 9223372036854775807" in out.stderr
    out = cli(False, "retry", "9223372036854775807", "-c", str(config))
    assert (out.returncode, out.stderr) == (1, "dicomnode: error: no job 9223372036854775807\n")
    for n, bad in enumerate(("99999999999999999999", "-1", "1000001")):
        out = cli(n == 0, "status", "--audit", bad, "-c", str(config))
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert "--audit: must be a whole number from 0 to 1000000" in out.stderr
    out = cli(False, "status", "--audit", "1000000", "-c", str(config))
    assert out.returncode == 0 and out.stdout == "no studies\n"
