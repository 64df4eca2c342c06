"""Run ``dicomnode serve`` as a subprocess on a free loopback port, as a PACS would see it."""

from __future__ import annotations

import os
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomnode.demo.processes import free_port, stop_process

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
STORESCU = "/usr/bin/storescu"
ECHOSCU = "/usr/bin/echoscu"
T = TypeVar("T")


#: The toy pipeline of the tests (``TOY:<word>`` in a SeriesDescription makes it misbehave).
TOY_PIPELINE = "testkit.toy_pipeline:ToyPipeline"


def toy_export_config(pacs_port: int, down_port: int) -> dict[str, Any]:
    """Config of a node that runs the toy pipeline on CT series and sends its results to
    ``pacs`` and ``down`` (AE titles PACS and DOWN on loopback), with test-sized timings."""
    return {
        "workers": {
            "count": 1,
            "device": "cpu",
            "lease_seconds": 5,
            "heartbeat_seconds": 0.5,
            "poll_seconds": 0.2,
            "backoff_seconds": 0.2,
        },
        "export": {
            "backoff_seconds": 0.2,
            "max_backoff_seconds": 0.5,
            "poll_seconds": 0.2,
            "timeout": 5,
            "max_attempts": 3,
            "lease_seconds": 5,
        },
        "stability": {"series_seconds": 1, "study_seconds": 2},
        "destinations": {
            "pacs": {"ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port},
            "down": {"ae_title": "DOWN", "host": "127.0.0.1", "port": down_port},
        },
        "pipelines": {"toy": {"class": TOY_PIPELINE, "threshold": 1}},
        "routes": [
            {
                "name": "ct-toy",
                "pipeline": "toy",
                "when": {"Modality": "CT"},
                "send_to": ["pacs", "down"],
            }
        ],
    }


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 60) -> T:
    """Poll ``predicate`` until it returns a true value, and return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


#: ``tls_args`` of pynetdicom's ``associate``: a client context and the server's host name.
TlsArgs = tuple[ssl.SSLContext, str]


def answers(port: int, tls: TlsArgs | None = None) -> bool:
    """Whether a node listens and answers an association request (accepting or rejecting)."""
    ae = AE(ae_title="READYCHECK")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 1
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE", tls_args=tls)
    if assoc.is_established:
        assoc.release()
        return True
    return bool(assoc.is_rejected)


def wait_answering(
    proc: subprocess.Popen[bytes], port: int, tls: TlsArgs | None, timeout: float, log: Path
) -> None:
    """Wait until the SCP ``proc`` answers on ``port``; its ``log`` tail in the error if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if answers(port, tls):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"did not answer: {log.read_text()[-2000:]}")


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> None:
    """Wait until ``proc`` accepts TCP connections on loopback ``port`` (its HTTP server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"HTTP did not listen: {log.read_text()[-2000:]}")


def echo(
    port: int, *, ae_title: str = "TESTSCU", timeout: float = 5, tls: TlsArgs | None = None
) -> bool:
    """C-ECHO the node; True on Success."""
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = timeout
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE", tls_args=tls)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0
    finally:
        assoc.release()


@dataclass
class NodeProcess:
    """A node subprocess with its own config, data dir and log file."""

    root: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: How to reach a node whose listener speaks TLS (set before :meth:`start`).
    tls: TlsArgs | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.http_port = free_port()
        config: dict[str, Any] = {
            "data_dir": str(self.root / "data"),
            "node": {"host": "127.0.0.1", "port": self.port},
            "storage": {"min_free": "1MB"},
            "stability": {"series_seconds": 2, "study_seconds": 3},
            "http": {"port": self.http_port},
        }
        for section, values in self.overrides.items():
            if isinstance(values, dict):
                config.setdefault(section, {}).update(values)
            else:
                config[section] = values
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "dicomnode.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = self.root / "node.log"

    @property
    def store(self) -> Path:
        return self.root / "data" / "store"

    @property
    def db_path(self) -> Path:
        return self.root / "data" / "state.db"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a ``dicomnode`` subcommand against this node's config."""
        return subprocess.run(
            [sys.executable, "-m", "dicomnode.cli", *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, timeout: float = 30) -> NodeProcess:
        """Start and wait until it answers C-ECHO."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnode.cli", "serve", "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_answering(self.proc, self.port, self.tls, timeout, self.log_path)
        http = yaml.safe_load(self.config_path.read_text()).get("http", {})
        if http.get("enabled", True) and http.get("port"):
            wait_listening(self.proc, int(http["port"]), timeout, self.log_path)
        return self

    def stop(self) -> None:
        """SIGTERM and wait."""
        stop_process(self.proc, grace=15)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        stop_process(self.proc, grace=0)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the node's SQLite state directly."""
        with sqlite3.connect(self.db_path, timeout=30) as conn:
            return list(conn.execute(sql))

    def stored_files(self) -> list[Path]:
        """Files of the store proper (not spool, superseded or quarantine)."""
        return sorted(
            p
            for p in self.store.rglob("*.dcm")
            if not p.relative_to(self.store).parts[0].startswith(".")
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running(root: Path, overrides: dict[str, Any] | None = None) -> Iterator[NodeProcess]:
    """A started node in ``root``, killed on the way out (the node a module's tests share)."""
    node = NodeProcess(root, overrides or {})
    try:
        yield node.start()
    finally:
        node.kill()


def storescu(
    port: int, paths: list[Path], *extra: str, aet: str = "STORESCU", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """dcmtk's storescu (not pynetdicom's of the same name) with Nagle off."""
    return subprocess.run(
        [
            STORESCU,
            "-v",
            "-nh",
            "-aet",
            aet,
            "-aec",
            "DICOMNODE",
            *extra,
            "127.0.0.1",
            str(port),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        env=DCMTK_ENV,
        timeout=timeout,
    )
