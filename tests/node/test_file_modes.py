"""File modes under a permissive caller umask: everything the node writes (data dir, state
database and its WAL/SHM, store, result files, lock file) and the config ``init`` writes is
its user's only; ``init`` follows no symbolic link."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testkit import dicomgen
from testkit.nodeproc import TOY_PIPELINE, storescu, wait_for
from testkit.seriesgen import write_series


def _cli(*args: str, umask: int = 0o000) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        umask=umask,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    """This process's umask (inherited by the children it starts) set to ``mask``."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _group_or_world_access(root: Path) -> list[str]:
    """Paths under ``root`` (and itself) with any group or other permission bit."""
    paths = [root, *root.rglob("*")]
    return [f"{p} {oct(_mode(p))}" for p in paths if _mode(p) & 0o077]


def test_init_writes_a_private_config_under_a_permissive_umask(tmp_path):
    out = _cli("init", str(tmp_path / "new" / "node"))
    assert out.returncode == 0, out.stderr
    assert _mode(tmp_path / "new" / "node" / "dicomnode.yaml") == 0o600
    assert _mode(tmp_path / "new" / "node") == 0o700
    assert _mode(tmp_path / "new") == 0o700
    # an existing, readable config overwritten with --force becomes private too
    old = tmp_path / "old"
    old.mkdir()
    (old / "dicomnode.yaml").write_text("node: {}\n")
    (old / "dicomnode.yaml").chmod(0o644)
    assert _cli("init", str(old), "--force").returncode == 0
    assert _mode(old / "dicomnode.yaml") == 0o600
    assert "routes:" in (old / "dicomnode.yaml").read_text()


def test_init_follows_no_symbolic_link(tmp_path):
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("precious\n")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "dicomnode.yaml").symlink_to(elsewhere)
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    (tmp_path / "dir-link").symlink_to(real_dir, target_is_directory=True)
    for args in (
        (str(linked),),
        (str(linked), "--force"),
        (str(tmp_path / "dir-link"),),
        (str(tmp_path / "dir-link"), "--force"),
    ):
        out = _cli("init", *args)
        assert out.returncode == 2, args
        (line,) = out.stderr.splitlines()
        assert line.startswith("dicomnode: error: ") and "symbolic link" in line, line
    assert elsewhere.read_text() == "precious\n"
    assert list(real_dir.iterdir()) == []


def test_everything_the_node_writes_is_private_under_umask_000(node_factory, tmp_path):
    node = node_factory(
        workers={"count": 1, "device": "cpu", "poll_seconds": 0.2},
        stability={"series_seconds": 1, "study_seconds": 2},
        pipelines={"toy": {"class": TOY_PIPELINE, "threshold": 1}},
        routes=[{"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "shadow": True}],
    )
    data = node.root / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # as a data dir made by hand might be: tightened at start
    with _umask(0o000):
        node.start()
    spec = dicomgen.study("modes", [3])[0]
    sent = storescu(node.port, write_series(spec, tmp_path / "series", value=5))
    assert sent.returncode == 0, sent.stderr
    wait_for(
        lambda: node.query("select state from jobs") == [("succeeded",)], "the job", timeout=60
    )
    results = [p for p in (data / "results").rglob("*") if p.is_file()]
    assert results and node.stored_files()
    for name in ("state.db", "state.db-wal", "state.db-shm", "dicomnode.lock"):
        assert (data / name).is_file(), name
    assert _group_or_world_access(data) == []
    assert _mode(data) == 0o700
    assert _mode(data / "state.db-wal") == 0o600
