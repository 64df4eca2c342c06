"""Start-up as an operator meets it: one node per data dir, one-line errors (exit 2, no
traceback) for a taken port, an unwritable data dir or store and an unreachable database;
``dicomnode check`` reports busy ports; ``init`` then ``check`` is green on a fresh machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from dicomnode.config import default_config_text, parse_config
from dicomnode.demo.processes import stop_process
from dicomnode.pipeline import PipelineRegistry
from dicomnode.routing import compile_routes
from dicomnode.store.db import open_database
from testkit.nodeproc import echo, free_port, wait_for
from testkit.pg import fresh_database


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _refused(out: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a start that was refused (exit 2, no traceback)."""
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith("dicomnode: error: ")
    return line


def _write_config(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _config(root: Path, **sections: Any) -> dict[str, Any]:
    """A node config on free loopback ports with its data dir under ``root``."""
    data: dict[str, Any] = {
        "data_dir": str(root / "data"),
        "node": {"host": "127.0.0.1", "port": free_port()},
        "http": {"port": free_port()},
        "storage": {"min_free": "1MB"},
    }
    data.update(sections)
    return data


@contextmanager
def _listening(port: int) -> Iterator[socket.socket]:
    """Another program listening on ``port`` (a real socket)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock


@contextmanager
def _read_only_dir(path: Path) -> Iterator[Path]:
    """A folder whose filesystem refuses writes: a read-only tmpfs as root (root writes
    through mode 0500), a mode 0500 folder otherwise."""
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        path.chmod(0o500)
        try:
            yield path
        finally:
            path.chmod(0o700)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"cannot mount a read-only tmpfs: {mounted.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_second_serve_or_worker_on_the_same_data_dir_is_refused_naming_the_holder(
    node_factory, tmp_path
):
    first = node_factory().start()
    assert first.proc is not None
    in_flight = first.store / ".incoming" / "in-flight.part"
    in_flight.write_bytes(b"a transfer in progress")
    # same data dir, other ports: only the data dir lock can refuse it
    second = _write_config(
        tmp_path / "second.yaml",
        {**_config(tmp_path), "data_dir": str(first.root / "data")},
    )
    for command in ("serve", "worker"):
        line = _refused(_cli(command, "-c", str(second)))
        assert f"PID {first.proc.pid}" in line and str(first.root / "data") in line
    assert in_flight.read_bytes() == b"a transfer in progress"  # no second recovery ran
    assert echo(first.port)
    assert (first.root / "data" / "dicomnode.lock").read_text().strip() == str(first.proc.pid)


def test_a_lock_file_left_by_a_killed_node_does_not_block(node_factory):
    node = node_factory().start()
    assert node.proc is not None
    killed = node.proc.pid
    node.kill()
    lock = node.root / "data" / "dicomnode.lock"
    assert lock.read_text().strip() == str(killed)  # the file stays; the kernel dropped the lock
    node.start()
    assert node.proc is not None and echo(node.port)
    assert lock.read_text().strip() == str(node.proc.pid)


def test_workers_on_postgresql_share_a_data_dir(postgres_url, tmp_path):
    url = fresh_database(postgres_url, "startup_share")
    open_database(url).dispose()  # two first starts would race to create the schema
    config = _write_config(
        tmp_path / "worker.yaml",
        _config(tmp_path, database={"url": url}, workers={"count": 1, "device": "cpu"}),
    )
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dicomnode.cli", "worker", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        for log in logs
    ]
    try:
        for log in logs:
            wait_for(lambda log=log: "node started" in log.read_text(), "a worker", timeout=30)
        assert [proc.poll() for proc in procs] == [None, None]
    finally:
        for proc in procs:
            stop_process(proc, grace=15)


@pytest.mark.parametrize("which", ["DICOM", "HTTP"])
def test_a_taken_port_is_one_line_naming_the_socket_and_port(tmp_path, which):
    data = _config(tmp_path)
    port = data["node" if which == "DICOM" else "http"]["port"]
    config = _write_config(tmp_path / "node.yaml", data)
    with _listening(port):
        started = time.monotonic()
        line = _refused(_cli("serve", "-c", str(config)))
        elapsed = time.monotonic() - started
    assert f"{which} port {port}" in line and "in use" in line
    other = "HTTP" if which == "DICOM" else "DICOM"
    assert f"{other} port" not in line
    assert elapsed < 15
    assert not (tmp_path / "data" / "state.db").exists()  # refused before touching state


def test_check_reports_each_busy_port(tmp_path):
    data = _config(tmp_path)
    config = _write_config(tmp_path / "node.yaml", data)
    with _listening(data["node"]["port"]), _listening(data["http"]["port"]):
        out = _cli("check", "-c", str(config))
    assert out.returncode == 1
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2, out.stdout
    assert fails[0].startswith(f"FAIL  DICOM port: 127.0.0.1:{data['node']['port']} ")
    assert fails[1].startswith(f"FAIL  HTTP port: 127.0.0.1:{data['http']['port']} ")
    assert all("in use" in line for line in fails)


def test_a_read_only_data_dir_is_one_line(tmp_path):
    with _read_only_dir(tmp_path / "ro") as ro:
        config = _write_config(tmp_path / "node.yaml", {**_config(tmp_path), "data_dir": str(ro)})
        line = _refused(_cli("serve", "-c", str(config)))
        assert f"data dir {ro} is not writable" in line
        check = _cli("check", "-c", str(config))
    assert check.returncode == 1 and f"FAIL  data dir: {ro} is not writable" in check.stdout


def test_a_store_on_a_read_only_filesystem_is_one_line(tmp_path):
    with _read_only_dir(tmp_path / "ro") as ro:
        store = ro / "store"
        config = _write_config(
            tmp_path / "node.yaml", _config(tmp_path, storage={"path": str(store), "min_free": 0})
        )
        line = _refused(_cli("serve", "-c", str(config)))
        assert f"store {store} is not writable" in line
        assert "Read-only file system" in line or "Permission denied" in line


def test_an_unreachable_database_is_one_line(tmp_path):
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://dicomnode:secret@127.0.0.1:{port}/dicomnode"
    config = _write_config(tmp_path / "node.yaml", _config(tmp_path, database={"url": url}))
    for command in ("serve", "worker"):
        line = _refused(_cli(command, "-c", str(config)))
        assert f"127.0.0.1:{port}" in line and "refused" in line
        assert "secret" not in line
    check = _cli("check", "-c", str(config))
    assert check.returncode == 1 and "FAIL  database: " in check.stdout
    assert "secret" not in check.stdout


def test_init_then_check_is_green_and_creates_nothing(tmp_path):
    assert _cli("init", str(tmp_path / "node")).returncode == 0
    config = tmp_path / "node" / "dicomnode.yaml"
    # this machine's 11112 and 8080 may be taken by others: the written ports, made free
    text = config.read_text()
    text = text.replace("port: 11112", f"port: {free_port()}")
    text = text.replace("port: 8080 ", f"port: {free_port()} ")
    config.write_text(text)
    out = _cli("check", "-c", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAIL" not in out.stdout
    data = tmp_path / "node" / "data"
    assert f"ok    database: {data / 'state.db'} will be created" in out.stdout
    assert f"ok    store: {data / 'store'} will be created" in out.stdout
    assert not data.exists()
    assert (
        "ok    DICOM port: 0.0.0.0:" in out.stdout and "ok    HTTP port: 127.0.0.1:" in out.stdout
    )


def _uncomment(text: str, section: str) -> str:
    """``section: {}`` (or ``[]``) made ``section:`` followed by its commented examples."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == section and rest.strip() in ("{}", "[]"):
            out.append(f"{section}:")
            inside = True
        elif inside and line.startswith("#  "):
            out.append(line[1:])
        else:
            inside = False
            out.append(line)
    return "\n".join(out) + "\n"


def test_the_commented_example_routes_switch_on_the_three_pipelines(tmp_path):
    text = default_config_text()
    for section in ("destinations", "routes", "pipelines"):
        text = _uncomment(text, section)
    config = parse_config(yaml.safe_load(text), source="uncommented", base=tmp_path)
    routes = compile_routes(
        config.routes,
        pipelines=PipelineRegistry(config.class_paths).names(),
        destinations=set(config.destinations),
    )
    assert [(r.name, r.pipeline, r.level.value) for r in routes] == [
        ("chest-ct-nodules", "lung_nodule", "series"),
        ("brain-flair-lesions", "brain_lesion", "series"),
        ("screening-mammo", "mammo_score", "study"),
    ]
    assert all(route.send_to == ["pacs"] for route in config.routes)
