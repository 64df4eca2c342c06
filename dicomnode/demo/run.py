"""``dicomnode demo``: the whole node on one machine in a few minutes.

A node on the embedded defaults (a temporary data dir; loopback ports; three routes; a short
quiet window) runs as a subprocess beside a receiving peer (Orthanc when installed, else a
built-in Storage SCP). The demo generates a chest CT, a FLAIR brain MR and a 4-view mammogram,
sends them to the node over DICOM, prints one line per state change while the node works,
then a table of what came back, and leaves the result files in a folder it names.

Everything it prints is free of patient identifiers (the studies are synthetic anyway).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml

from dicomnode.demo.peers import ORTHANC, BuiltinReceiver, OrthancPeer, Peer, valid_uid
from dicomnode.demo.processes import free_port, stop_process
from dicomnode.demo.studies import (
    DemoStudy,
    describe_findings,
    generate_studies,
    routes_for,
    send_study,
)
from dicomnode.errors import DicomNodeError

__all__ = ["DemoFailed", "DemoNode", "DemoOptions", "run_demo"]

RESEARCH_NOTICE = (
    "RESEARCH USE ONLY: results come from small demo weights trained on synthetic phantoms; "
    "they are not for diagnosis."
)
QUIET_SECONDS = (2, 3)  # series, study: the demo's stability window (defaults: 30, 90)
DEFAULT_OUT = Path("dicomnode-demo-results")
_WAITING = f"stored by the node; complete after {QUIET_SECONDS[0]} s without a new instance"


class DemoFailed(DicomNodeError):
    """The demo could not complete; the message is the one-line reason."""


@dataclass(frozen=True)
class DemoOptions:
    """Options of ``dicomnode demo``.

    Attributes
    ----------
    out : Path, optional
        Folder for the result files (default ``./dicomnode-demo-results/<UTC timestamp>``).
    keep : bool
        Keep the temporary data dir (node state, store, logs, generated studies).
    orthanc : bool
        Use Orthanc as the receiving peer when it is installed.
    timeout : float
        Seconds to wait for all results after sending.
    node_command : tuple of str
        How to start ``dicomnode`` for the node (``serve -c CONFIG`` is appended); empty: this
        Python's. ``{work}`` in it becomes the demo's temporary folder, which holds the config
        and the data dir and is then open to every user: a node in a container (another
        user) mounts it at the same path, e.g. ``buildah run --network host -v {work}:{work}
        CONTAINER -- dicomnode`` (deploy/image/roundtrip.py).
    """

    out: Path | None = None
    keep: bool = False
    orthanc: bool = True
    timeout: float = 600.0
    node_command: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")


class DemoNode:
    """``dicomnode serve`` as a subprocess with the demo's config in ``root``.

    Parameters
    ----------
    root : Path
        Temporary folder: config, data dir, node log.
    peer : Peer
        Where results go.
    command : sequence of str
        The ``dicomnode`` to start (default: this Python's); ``serve -c CONFIG`` is appended.
    """

    ae_title = "DICOMNODE"

    def __init__(self, root: Path, peer: Peer, command: Sequence[str] = ()):
        self.root = root
        self.command = list(command) or [sys.executable, "-m", "dicomnode.cli"]
        self.port = free_port()
        self.http_port = free_port()
        self.log_path = root / "node.log"
        self.config_path = root / "dicomnode.yaml"
        config: dict[str, Any] = {
            "data_dir": str(root / "data"),
            "node": {"host": "127.0.0.1", "port": self.port},
            "storage": {"min_free": "200MB"},
            "stability": {"series_seconds": QUIET_SECONDS[0], "study_seconds": QUIET_SECONDS[1]},
            "http": {"host": "127.0.0.1", "port": self.http_port},
            "destinations": {
                "peer": {"ae_title": peer.ae_title, "host": "127.0.0.1", "port": peer.port}
            },
            "routes": routes_for("peer"),
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> None:
        """Start and wait for ``/readyz``; :class:`DemoFailed` when it does not get ready."""
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                [*self.command, "serve", "-c", str(self.config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped by us, in order, on Ctrl-C
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if self.get("/readyz").get("ready"):
                    return
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            time.sleep(0.25)
        raise DemoFailed(
            f"the node did not get ready within {timeout:.0f} s (log: {self.log_path})"
        )

    def check_alive(self) -> None:
        """:class:`DemoFailed` when the node process has exited."""
        if self._proc is not None and self._proc.poll() is not None:
            raise DemoFailed(
                f"the node exited with {self._proc.returncode}: {self._last_log_line()} "
                f"(log: {self.log_path})"
            )

    def _last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "no log"
        last = next((line.strip() for line in reversed(lines) if line.strip()), "empty log")
        return last[:200]

    def get(self, path: str) -> Any:
        """JSON from the node's HTTP API (a 503 from /readyz is JSON too)."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                return json.loads(exc.read())
            raise

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its whole process group (inference children included)."""
        stop_process(self._proc, grace=30, group=True)
        self._proc = None


class _Progress:
    """Turns polled node/peer state into one printed line per change."""

    def __init__(self, studies: list[DemoStudy], peer: Peer, say: Callable[[str, str], None]):
        self.studies = studies
        self.peer = peer
        self.say = say
        self._seen: dict[tuple[str, str], object] = {}

    def _change(self, study: DemoStudy, key: str, value: object, text: str) -> None:
        if self._seen.get((study.study_uid, key)) != value:
            self._seen[(study.study_uid, key)] = value
            self.say(study.label, text)

    def poll(self, node: DemoNode) -> None:
        series = node.get("/api/studies")
        jobs = node.get("/api/jobs")
        for study in self.studies:
            if study.outcome != "waiting":
                continue
            states = sorted(
                {row["series_state"] for row in series if row["study_uid"] == study.study_uid}
            )
            if states:
                text = "series complete" if states == ["complete"] else _WAITING
                self._change(study, "series", states, text)
            mine = [j for j in jobs if j["subject"] in study.series_uids | {study.study_uid}]
            for job in mine:
                self._job(study, job)
            self._peer(study, mine)

    def _job(self, study: DemoStudy, job: dict[str, Any]) -> None:
        state = job["state"]
        detail = f"job {job['id']} {job['pipeline']}: {state}"
        if state in ("failed", "dead", "refused") and job.get("error"):
            detail += f" ({str(job['error']).splitlines()[0][:120]})"
        self._change(study, f"job{job['id']}", state, detail)
        d = job["deliveries"]
        total = sum(d.values())
        if total:
            self._change(
                study,
                f"del{job['id']}",
                (d["delivered"], total),
                f"results delivered to {self.peer.name}: {d['delivered']}/{total}",
            )
        if state in ("dead", "refused"):
            study.outcome = f"{state}: {str(job.get('error') or '').splitlines()[0][:120]}"
        elif d["dead"]:
            study.outcome = f"{d['dead']} result(s) could not be delivered"

    def _peer(self, study: DemoStudy, jobs: list[dict[str, Any]]) -> None:
        succeeded = [j for j in jobs if j["state"] == "succeeded"]
        if not succeeded or study.outcome != "waiting":
            return
        wanted = sum(j["deliveries"]["delivered"] for j in succeeded)
        open_ = sum(j["deliveries"]["pending"] + j["deliveries"]["sending"] for j in succeeded)
        if open_ or not wanted:
            return
        held = self.peer.received(study.study_uid)
        if len(held) >= wanted:
            study.done_at = max(item.arrived for item in held)
            study.outcome = "ok"
            self.say(study.label, f"{self.peer.name} holds {len(held)} result objects: done")


def _collect(studies: list[DemoStudy], peer: Peer, out: Path) -> None:
    """Write what the peer holds into ``out/<pipeline>/`` and describe the findings."""
    for study in studies:
        folder = out / study.pipeline
        for item in peer.received(study.study_uid):
            if not valid_uid(item.sop_instance_uid):
                continue
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{item.modality or 'XX'}_{item.sop_instance_uid}.dcm"
            path.write_bytes(item.data)
            study.result_files.append(path)
            study.objects.append(item.modality)
            if item.modality == "SR":
                study.findings = describe_findings(study.pipeline, item.data)


def render_table(studies: list[DemoStudy]) -> str:
    """The closing table: study, pipeline, findings, objects, seconds."""
    header = ("STUDY", "TRUTH", "PIPELINE", "FINDINGS", "OBJECTS", "SECONDS")
    rows = [
        (
            s.label,
            s.truth,
            s.pipeline,
            s.findings or (s.outcome if s.outcome != "ok" else "-"),
            "+".join(sorted(s.objects)) or "-",
            f"{s.seconds:.1f}" if s.seconds is not None else "-",
        )
        for s in studies
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def _peer(options: DemoOptions, work: Path, say: Callable[[str, str], None]) -> Peer:
    if options.orthanc and Path(ORTHANC).exists():
        orthanc = OrthancPeer(work / "orthanc", sender_ae=DemoNode.ae_title)
        try:
            orthanc.start()
            return orthanc
        except (RuntimeError, OSError) as exc:
            orthanc.stop()
            say("peer", f"Orthanc did not start ({exc}); using the built-in receiver")
    receiver = BuiltinReceiver()
    receiver.start()
    return receiver


class _Interrupt:
    """SIGINT/SIGTERM handler that also remembers: an interrupt raised inside the import of an
    extension module can be swallowed there (seen with numpy.random), so the demo checks too."""

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.fired = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal came, even one whose exception was lost."""
        if self.fired:
            raise KeyboardInterrupt


def run_demo(options: DemoOptions, stream: TextIO = sys.stdout) -> int:
    """Run the demo; returns the exit status (0: all three results back).

    On failure one line on stderr names the reason (1); Ctrl-C (or SIGTERM) stops the node and
    the peer before returning 130. Call it from the main thread (it installs signal handlers).

    Parameters
    ----------
    options : DemoOptions
        Output folder, ``--keep``, peer choice and timeout.
    stream : TextIO
        Where progress and the table go.

    Returns
    -------
    int
        The exit status.
    """
    started = time.monotonic()

    def say(who: str, text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {who:<15} {text}", file=stream, flush=True)

    interrupt = _Interrupt()
    # Ctrl-C and SIGTERM end in the clean-up below, even where SIGINT was inherited ignored
    previous = {
        signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = options.out or DEFAULT_OUT / stamp
    work = Path(tempfile.mkdtemp(prefix="dicomnode-demo-"))
    node: DemoNode | None = None
    peer: Peer | None = None
    keep = options.keep
    print(f"dicomnode demo. {RESEARCH_NOTICE}", file=stream, flush=True)
    try:
        peer = _peer(options, work, say)
        say("peer", f"{peer.name} listening as {peer.ae_title} on 127.0.0.1:{peer.port}")
        command = [part.replace("{work}", str(work)) for part in options.node_command]
        if command:
            work.chmod(0o777)  # the node may run as another user (a container's)
        node = DemoNode(work, peer, command)
        node.start()
        interrupt.check()
        say("node", f"ready: DICOM 127.0.0.1:{node.port}, HTTP http://127.0.0.1:{node.http_port}/")
        studies = generate_studies(work / "studies")
        interrupt.check()
        for study in studies:
            send_study(study, node.port, called_ae=DemoNode.ae_title)
            study.sent_at = time.time()
            interrupt.check()
            say(study.label, f"sent {len(study.files)} instances to the node")
        _wait(node, studies, _Progress(studies, peer, say), options.timeout, interrupt)
        out.mkdir(parents=True, exist_ok=True)
        _collect(studies, peer, out)
        table = render_table(studies)
        print("\n" + table, file=stream)
        (out / "results.txt").write_text(f"{RESEARCH_NOTICE}\n\n{table}", encoding="utf-8")
        failed = [s for s in studies if s.outcome != "ok"]
        print(f"Result files: {out.resolve()}\n{RESEARCH_NOTICE}", file=stream, flush=True)
        if failed:
            keep = True
            reasons = "; ".join(f"{s.label}: {s.outcome}" for s in failed)
            raise DemoFailed(f"{reasons} (node log: {node.log_path})")
        say("demo", f"finished in {time.monotonic() - started:.0f} s")
        return 0
    except (DicomNodeError, OSError) as exc:  # DemoFailed, send and file errors: the reason
        keep = True
        print(f"dicomnode demo: failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("dicomnode demo: interrupted; stopping the node and the peer", file=sys.stderr)
        return 130
    finally:
        for signum in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        if node is not None:
            node.stop()
        if peer is not None:
            peer.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if keep:
            print(f"Node data, logs and generated studies kept in {work}", file=stream)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _wait(
    node: DemoNode,
    studies: list[DemoStudy],
    progress: _Progress,
    timeout: float,
    interrupt: _Interrupt,
) -> None:
    deadline = time.monotonic() + timeout
    while any(s.outcome == "waiting" for s in studies):
        interrupt.check()
        node.check_alive()
        if time.monotonic() > deadline:
            waiting = ", ".join(s.label for s in studies if s.outcome == "waiting")
            raise DemoFailed(f"no results after {timeout:.0f} s for: {waiting}")
        try:
            progress.poll(node)
        except OSError as exc:  # URLError, timeouts, refused connections
            raise DemoFailed(f"the node's HTTP API stopped answering: {exc}") from exc
        time.sleep(0.3)
