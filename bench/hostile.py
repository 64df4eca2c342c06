"""Hostile-network benchmark: the node's network guards against a plain pynetdicom SCP.

The peer is an unguarded pynetdicom 3.0.4 SCP (Verification + CT Image Storage, answers every
C-STORE with Success) with the node's limits: max PDU 16384, 16 associations, ACSE timeout 5 s
(the node's ``handshake_timeout``), TLS 1.2+ with client certificates in section 3. It runs as
a subprocess of this script (``--serve-peer PORT [--tls DIR]``) so that its memory can be read
from ``/proc/<pid>/status``, as the node's (a ``dicomnode serve`` subprocess) is. Both are
measured in the same run, one after the other.

1. Oversized PDU. Associate offering max PDU 16384, then send a P-DATA-TF header declaring
   300 MB and stream zeros. Reported: ms from the header to the connection break, MB the
   connection took (an upper bound: it includes the sender's and receiver's socket buffers),
   the receiver's RSS growth (VmHWM after minus VmRSS before, peak reset first where the kernel
   allows), and whether it answers C-ECHO afterwards. The peer takes the whole PDU, so its
   declared size is reduced when MemAvailable is short (the line says so).
   Target: aborted within 1 s, RSS growth < 50 MB.
1b. Framing bypass. Before any association request, on three connections in parallel: a PDU of
   unknown type 0x08 and length 0, then a P-DATA-TF header declaring 300 MB (the peer: its
   memory budget split over the three) and zeros. Reported as in 1.
   Target: aborted within 1 s, RSS growth < 50 MB.
2. Connection flood. dcmtk's storescu stores a 20-instance series with no idle connections,
   then with 200 idle TCP connections open (opened one after the other, as ``open_idle``
   does), retried until it succeeds or 30 s pass; then the time until the receiver closed
   every idle connection. Times run from when the last idle connection was open; the line
   also says how long opening took, the kernel's listen-queue overflows meanwhile
   (system-wide) and how many connections the receiver's side held established then.
   Target: series stored within 2 s of the flood; idle connections closed within 10 s.
3. TLS handshake starvation. A 3-instance pynetdicom store with mutual authentication, with no
   silent peer, then while one TCP connection that never sends a ClientHello is open (closed by
   a timer after 10 s, which is what frees the peer's accept loop).
   Target: the silent connection delays the store by <= 2 s.
4. Slot holding. Another allow-listed peer keeps as many idle associations open as the receiver
   admits (up to 16), never sending a DIMSE request and re-opening each one that ends; the
   sender retries a C-ECHO for up to 30 s. Reported: how many the holder got, the time until the
   sender is served, and the receiver's thread count idle and while held.
   Target: served within 3 s.

Usage: ``python bench/hostile.py`` (about a minute). Prints one line per receiver and a ratio
line per section, then a summary table with MISSED next to a target the node misses; exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the node harness of the tests
    sys.path.insert(0, str(ROOT))

from dicomnode.demo.processes import stop_process  # noqa: E402
from testkit import dicomgen  # noqa: E402
from testkit.hostile import (  # noqa: E402
    is_open,
    pdu_header,
    push_oversized_pdu,
    wait_closed,
)
from testkit.nodeproc import (  # noqa: E402
    STORESCU,
    NodeProcess,
    TlsArgs,
    echo,
    free_port,
    storescu,
    wait_answering,
)
from testkit.pki import make_pki  # noqa: E402

MB = 2**20
MAX_PDU = 16384
MAX_ASSOCIATIONS = 16
HANDSHAKE_TIMEOUT = 5.0  # the node's handshake_timeout, the peer's acse_timeout
AET = "BENCHSCU"  # the allow-listed sender
HOLDER = "HOLDER"  # the allow-listed peer that holds slots (section 4)
HOLD_FOR = 30.0
DECLARED = 300 * MB
IDLE_SOCKETS = 200
FLOOD_SERIES = 20
STORE_DEADLINE = 30.0
CLOSE_TARGET = 10.0
SILENT_HOLD = 10.0
TLS_SERIES = 3

# -- the peer: a plain pynetdicom SCP ---------------------------------------------------------


def serve_peer(port: int, tls_dir: Path | None) -> None:
    """Run the unguarded SCP on ``port`` until killed."""
    ae = AE(ae_title="PLAINSCP")
    ae.maximum_pdu_size = MAX_PDU
    ae.maximum_associations = MAX_ASSOCIATIONS
    ae.acse_timeout = HANDSHAKE_TIMEOUT
    ae.dimse_timeout = ae.network_timeout = 60  # the node's defaults
    ae.add_supported_context(Verification)
    ae.add_supported_context(CTImageStorage)
    context = None
    if tls_dir is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")
        context.load_verify_locations(cafile=tls_dir / "ca.pem")
    handlers: list[Any] = [(evt.EVT_C_STORE, lambda event: 0x0000)]
    ae.start_server(("127.0.0.1", port), block=True, ssl_context=context, evt_handlers=handlers)


@dataclass
class PeerProcess:
    """The plain SCP as a subprocess of this script."""

    root: Path
    tls_dir: Path | None = None
    tls: TlsArgs | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> PeerProcess:
        """Start and wait until it answers an association request."""
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "--serve-peer", str(self.port)]
        if self.tls_dir is not None:
            cmd += ["--tls", str(self.tls_dir)]
        log_path = self.root / "peer.log"
        log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_answering(self.proc, self.port, self.tls, timeout, log_path)
        return self

    def stop(self) -> None:
        stop_process(self.proc, grace=10)


@dataclass
class Receiver:
    """What the sections need of the node or the peer."""

    name: str
    port: int
    pid: int
    tls: TlsArgs | None = None

    def alive(self) -> bool:
        return Path(f"/proc/{self.pid}").exists()


def receiver(name: str, proc: NodeProcess | PeerProcess) -> Receiver:
    assert proc.proc is not None
    return Receiver(name, proc.port, proc.proc.pid, proc.tls)


def node_process(root: Path, tls: dict[str, str] | None = None) -> NodeProcess:
    """A node configured like the peer, with ``AET`` from loopback allow-listed."""
    node: dict[str, Any] = {
        "max_pdu": MAX_PDU,
        "max_associations": MAX_ASSOCIATIONS,
        "handshake_timeout": HANDSHAKE_TIMEOUT,
        "allow": [
            {"ae_title": AET, "host": "127.0.0.1"},
            {"ae_title": HOLDER, "host": "127.0.0.1"},
        ],
    }
    if tls is not None:
        node["tls"] = tls
    return NodeProcess(root, {"node": node, "logging": {"level": "WARNING"}})


# -- memory --------------------------------------------------------------------------------


def status_mb(pid: int, key: str) -> float:
    """A ``/proc/<pid>/status`` field (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, own processes)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peer_declared() -> tuple[int, str]:
    """What the plain peer can be sent: it holds the PDU about four times over (PITFALLS)."""
    available = mem_available_mb()
    budget = int((available - 1024) / 6) * MB
    if budget >= DECLARED:
        return DECLARED, f"MemAvailable {available:.0f} MB: peer declared {DECLARED // MB} MB"
    declared = max(budget, 16 * MB)
    return declared, (
        f"MemAvailable {available:.0f} MB: peer declared only {declared // MB} MB "
        f"(node {DECLARED // MB} MB)"
    )


# -- 1. oversized PDU ----------------------------------------------------------------------


@dataclass
class PduResult:
    declared: int
    break_ms: float
    taken_mb: float
    growth_mb: float
    echo_after: bool


def oversized(rx: Receiver, declared: int) -> PduResult:
    """Send a P-DATA-TF header declaring ``declared`` bytes and zeros until the break."""
    reset_peak(rx.pid)
    before = status_mb(rx.pid, "VmRSS")
    ae = AE(ae_title=AET)
    ae.add_requested_context(CTImageStorage)
    ae.maximum_pdu_size = MAX_PDU
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    assoc = ae.associate("127.0.0.1", rx.port, ae_title="DICOMNODE")
    if not assoc.is_established:
        raise RuntimeError(f"{rx.name}: association refused")
    assert assoc.dul.socket is not None and assoc.dul.socket.socket is not None
    raw = assoc.dul.socket.socket
    raw.settimeout(60)
    started = time.perf_counter()
    sent = push_oversized_pdu(raw, pdu_type=0x04, declared=declared)
    # The send broke off (reset, broken pipe), or the receiver took it all and aborts later.
    deadline = time.monotonic() + 60
    while (
        sent == declared
        and assoc.is_established
        and assoc.is_alive()
        and time.monotonic() < deadline
    ):
        time.sleep(0.002)
    broke = time.perf_counter() - started
    time.sleep(0.3)
    growth = status_mb(rx.pid, "VmHWM") - before if rx.alive() else float("nan")
    if assoc.is_established:
        assoc.abort()
    alive = rx.alive() and echo(rx.port, ae_title=AET)
    return PduResult(declared, broke * 1000, sent / MB, growth, alive)


def section_oversized(node: Receiver, peer: Receiver, summary: Summary) -> None:
    declared, note = peer_declared()
    print(f"\n== 1. Oversized P-DATA-TF (max PDU {MAX_PDU} offered; {note})")
    results = {}
    for rx, size in ((node, DECLARED), (peer, declared)):
        r = results[rx.name] = oversized(rx, size)
        print(
            f"{rx.name:<10} declared {r.declared // MB:>3} MB: broke after {r.break_ms:>7.0f} ms, "
            f"took {r.taken_mb:>6.1f} MB, RSS growth {r.growth_mb:>7.1f} MB, "
            f"C-ECHO after: {'ok' if r.echo_after else 'FAILED'}"
        )
    n, p = results[node.name], results[peer.name]
    print(
        f"ratio peer/node: break time {ratio(p.break_ms, n.break_ms)}, "
        f"MB taken {ratio(p.taken_mb, n.taken_mb)}, RSS growth {ratio(p.growth_mb, n.growth_mb)}"
    )
    summary.add("oversized PDU: ms to abort", "<= 1000", n.break_ms, p.break_ms, "{:.0f}")
    summary.add("oversized PDU: RSS growth MB", "< 50", n.growth_mb, p.growth_mb, "{:.1f}")
    summary.add(
        "oversized PDU: C-ECHO after",
        "ok",
        "ok" if n.echo_after else "FAILED",
        "ok" if p.echo_after else "FAILED",
        "{}",
        ok=n.echo_after,
    )


# -- 1b. framing bypass --------------------------------------------------------------------

FRAMING_CONNECTIONS = 3


def framing_bypass(rx: Receiver, declared: int) -> PduResult:
    """Before any association: an unknown PDU type 0x08 of length 0, then a P-DATA-TF header
    declaring ``declared`` bytes and zeros, on FRAMING_CONNECTIONS connections in parallel."""
    reset_peak(rx.pid)
    before = status_mb(rx.pid, "VmRSS")

    def attack(_: int) -> int:
        with socket.create_connection(("127.0.0.1", rx.port), timeout=60) as raw:
            raw.sendall(pdu_header(0x08, 0))
            return push_oversized_pdu(raw, pdu_type=0x04, declared=declared)

    started = time.perf_counter()
    with ThreadPoolExecutor(FRAMING_CONNECTIONS) as pool:
        sent = list(pool.map(attack, range(FRAMING_CONNECTIONS)))
    broke = time.perf_counter() - started
    time.sleep(0.3)
    growth = status_mb(rx.pid, "VmHWM") - before if rx.alive() else float("nan")
    alive = rx.alive() and echo(rx.port, ae_title=AET)
    return PduResult(declared, broke * 1000, sum(sent) / MB, growth, alive)


def section_framing(node: Receiver, peer: Receiver, summary: Summary) -> None:
    declared, note = peer_declared()
    declared //= FRAMING_CONNECTIONS
    print(
        f"\n== 1b. Framing bypass ({FRAMING_CONNECTIONS} connections: PDU type 0x08 of length "
        f"0, then P-DATA-TF before any association request; {note}, split over the connections)"
    )
    results = {}
    for rx, size in ((node, DECLARED), (peer, declared)):
        r = results[rx.name] = framing_bypass(rx, size)
        print(
            f"{rx.name:<10} declared {r.declared // MB:>3} MB each: all broke after "
            f"{r.break_ms:>7.0f} ms, took {r.taken_mb:>6.1f} MB, RSS growth "
            f"{r.growth_mb:>7.1f} MB, C-ECHO after: {'ok' if r.echo_after else 'FAILED'}"
        )
    n, p = results[node.name], results[peer.name]
    print(
        f"ratio peer/node: break time {ratio(p.break_ms, n.break_ms)}, "
        f"MB taken {ratio(p.taken_mb, n.taken_mb)}, RSS growth {ratio(p.growth_mb, n.growth_mb)}"
    )
    summary.add("framing bypass: ms to abort", "<= 1000", n.break_ms, p.break_ms, "{:.0f}")
    summary.add("framing bypass: RSS growth MB", "< 50", n.growth_mb, p.growth_mb, "{:.1f}")


# -- 2. connection flood -------------------------------------------------------------------


def store_once(rx: Receiver, files: list[Path], timeout: float) -> bool:
    """storescu the series in one association; True when every instance got Success."""
    try:
        result = storescu(rx.port, files, "-to", "10", "-ta", "10", aet=AET, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    out = result.stdout + result.stderr
    return result.returncode == 0 and out.count("Received Store Response (Success)") == len(files)


def store_until(rx: Receiver, files: list[Path], limit: float) -> tuple[float | None, int]:
    """Retry the store until it succeeds or ``limit`` s pass; (seconds or None, attempts)."""
    started = time.perf_counter()
    attempts = 0
    while (left := limit - (time.perf_counter() - started)) > 0:
        attempts += 1
        if store_once(rx, files, timeout=max(left, 1)):
            return time.perf_counter() - started, attempts
        time.sleep(0.1)
    return None, attempts


def listen_overflows() -> int:
    """TcpExt ListenOverflows (system-wide): SYNs or ACKs dropped on a full accept queue."""
    lines = [ln.split() for ln in Path("/proc/net/netstat").read_text().splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names[0] == "TcpExt:" and "ListenOverflows" in names:
            return int(values[names.index("ListenOverflows")])
    return 0


def established(port: int) -> int:
    """Connections the kernel holds established on the receiver's side of ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def open_serially(port: int, count: int) -> tuple[list[socket.socket], int]:
    """``open_idle``, tolerant of connects that time out; (sockets, failures)."""
    sockets, failed = [], 0
    for _ in range(count):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        except OSError:
            failed += 1
    return sockets, failed


@dataclass
class FloodResult:
    baseline: float | None
    open_s: float
    failed: int
    held: int
    overflows: int
    flooded: float | None
    attempts: int
    closed: int
    closed_after: float


def flood(rx: Receiver, base: list[Path], flooded: list[Path]) -> FloodResult:
    """Store with no idle connections, then with them open (opened one after the other)."""
    baseline, _ = store_until(rx, base, limit=STORE_DEADLINE)
    overflows = listen_overflows()
    started = time.perf_counter()
    idle, failed = open_serially(rx.port, IDLE_SOCKETS)
    opened = time.perf_counter()
    held = established(rx.port)
    overflows = listen_overflows() - overflows
    watch: list[tuple[int, float]] = []

    def watcher() -> None:
        closed = wait_closed(idle, timeout=STORE_DEADLINE + CLOSE_TARGET)
        watch.append((closed, time.perf_counter() - opened))

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    try:
        stored, attempts = store_until(rx, flooded, limit=STORE_DEADLINE)
        thread.join(STORE_DEADLINE + CLOSE_TARGET + 5)
    finally:
        for sock in idle:
            sock.close()
    closed, closed_after = watch[0] if watch else (0, float("nan"))
    return FloodResult(
        baseline, opened - started, failed, held, overflows, stored, attempts, closed, closed_after
    )


def section_flood(node: Receiver, peer: Receiver, work: Path, summary: Summary) -> None:
    print(
        f"\n== 2. Connection flood ({IDLE_SOCKETS} idle TCP connections, dcmtk storescu, "
        f"{FLOOD_SERIES}-instance series, retried up to {STORE_DEADLINE:.0f} s)"
    )
    results = {}
    for i, rx in enumerate((node, peer)):
        base, flooded = (
            dicomgen.write_series(spec, work / f"flood-{rx.name}-{spec.series_number}")
            for spec in dicomgen.study(f"flood{i}", [FLOOD_SERIES, FLOOD_SERIES])
        )
        r = results[rx.name] = flood(rx, base, flooded)
        stored = f"{r.flooded:.2f} s ({r.attempts} tries)" if r.flooded else "NOT STORED"
        print(
            f"{rx.name:<10} no idle: stored in {secs(r.baseline)}; {IDLE_SOCKETS} idle opened "
            f"in {r.open_s:.2f} s ({r.failed} failed, {r.overflows} listen overflows, "
            f"{r.held} established receiver-side): stored in {stored}; "
            f"closed {r.closed}/{IDLE_SOCKETS - r.failed} within {r.closed_after:.1f} s"
        )
    n, p = results[node.name], results[peer.name]
    print(
        f"ratio peer/node: store under flood {ratio(p.flooded, n.flooded)}, "
        f"idle closed {ratio(p.closed_after, n.closed_after)}"
    )
    summary.add("flood: store s, no idle", "-", n.baseline, p.baseline, "{:.2f}", ok=True)
    summary.add("flood: store s, 200 idle", "<= 2", n.flooded, p.flooded, "{:.2f}")
    summary.add(
        "flood: idle all closed, s",
        f"<= {CLOSE_TARGET:.0f}",
        n.closed_after if n.closed == IDLE_SOCKETS else None,
        p.closed_after if p.closed == IDLE_SOCKETS - p.failed else None,
        "{:.1f}",
    )


# -- 3. TLS handshake starvation ------------------------------------------------------------


def tls_store(rx: Receiver, name: str) -> float | None:
    """Store a small series over TLS; seconds, or None unless every instance got Success."""
    assert rx.tls is not None
    spec = dicomgen.study(f"{rx.name}-{name}", [TLS_SERIES])[0]
    datasets = list(dicomgen.series(spec))
    ae = AE(ae_title=AET)
    ae.add_requested_context(CTImageStorage)
    ae.connection_timeout = ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 30
    started = time.perf_counter()
    assoc = ae.associate("127.0.0.1", rx.port, ae_title="DICOMNODE", tls_args=rx.tls)
    if not assoc.is_established:
        return None
    statuses = [assoc.send_c_store(ds).Status for ds in datasets]
    assoc.release()
    elapsed = time.perf_counter() - started
    return elapsed if statuses == [0] * TLS_SERIES else None


@dataclass
class TlsResult:
    baseline: float | None
    silent: float | None
    silent_open: bool

    @property
    def delay(self) -> float | None:
        if self.baseline is None or self.silent is None:
            return None
        return self.silent - self.baseline


def starvation(rx: Receiver) -> TlsResult:
    """The best of two stores with no silent peer, then one with a silent connection open."""
    stores = [tls_store(rx, f"baseline{i}") for i in range(2)]
    baseline = None if None in stores else min(t for t in stores if t is not None)
    silent = socket.create_connection(("127.0.0.1", rx.port), timeout=30)
    timer = threading.Timer(SILENT_HOLD, silent.close)
    timer.start()
    try:
        stored = tls_store(rx, "silent")
        still_open = silent.fileno() != -1 and is_open(silent)
    finally:
        timer.cancel()
        silent.close()
    return TlsResult(baseline, stored, still_open)


def section_tls(node: Receiver, peer: Receiver, summary: Summary) -> None:
    print(
        f"\n== 3. TLS handshake starvation ({TLS_SERIES}-instance pynetdicom store, mutual "
        f"authentication; 1 silent connection, closed after {SILENT_HOLD:.0f} s)"
    )
    results = {}
    for rx in (node, peer):
        r = results[rx.name] = starvation(rx)
        print(
            f"{rx.name:<10} no silent peer: {secs(r.baseline)}; with a silent peer: "
            f"{secs(r.silent)} (silent connection still open after the store: "
            f"{'yes' if r.silent_open else 'no'}); delay "
            f"{'FAILED' if r.delay is None else f'{r.delay:+.2f} s'}"
        )
    n, p = results[node.name], results[peer.name]
    print(f"ratio peer/node: store with a silent peer {ratio(p.silent, n.silent)}")
    summary.add("TLS: store s, no silent", "-", n.baseline, p.baseline, "{:.2f}", ok=True)
    summary.add("TLS: store s, 1 silent", "-", n.silent, p.silent, "{:.2f}", ok=True)
    summary.add("TLS: delay s", "<= 2", n.delay, p.delay, "{:+.2f}")


# -- 4. slot holding ------------------------------------------------------------------------


def _associate(rx: Receiver, ae_title: str) -> Any:
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    return ae.associate("127.0.0.1", rx.port, ae_title="DICOMNODE")


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


@dataclass
class SlotResult:
    held: int
    served: float | None
    attempts: int
    threads_idle: int
    threads_held: int


def slot_holding(rx: Receiver) -> SlotResult:
    """A peer holds every slot it can with associations that never send a DIMSE request,
    re-opening each one that ends; meanwhile the allow-listed sender asks for a C-ECHO."""
    threads_idle = threads(rx.pid)
    stop = threading.Event()
    held: list[Any] = []
    peak = [0]

    def hold() -> None:
        while not stop.is_set():
            held[:] = [a for a in held if a.is_established]
            peak[0] = max(peak[0], len(held))
            if len(held) >= MAX_ASSOCIATIONS:
                time.sleep(0.05)
                continue
            assoc = _associate(rx, HOLDER)
            if assoc.is_established:
                held.append(assoc)
            else:
                time.sleep(0.2)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    time.sleep(2)  # the holder takes what it can
    threads_held = threads(rx.pid)
    started = time.perf_counter()
    served, attempts = None, 0
    while time.perf_counter() - started < HOLD_FOR:
        attempts += 1
        assoc = _associate(rx, AET)
        if assoc.is_established:
            ok = assoc.send_c_echo().Status == 0
            assoc.release()
            if ok:
                served = time.perf_counter() - started
                break
        time.sleep(0.2)
    stop.set()
    holder.join(15)
    for assoc in held:
        assoc.abort()
    return SlotResult(peak[0], served, attempts, threads_idle, threads_held)


def section_slots(node: Receiver, peer: Receiver, summary: Summary) -> None:
    print(
        f"\n== 4. Slot holding (a peer keeps up to {MAX_ASSOCIATIONS} idle associations open, "
        f"re-opening each one that ends; an allow-listed sender asks for a C-ECHO, "
        f"retried up to {HOLD_FOR:.0f} s)"
    )
    results = {}
    for rx in (node, peer):
        r = results[rx.name] = slot_holding(rx)
        print(
            f"{rx.name:<10} holder got {r.held:>2} associations; sender served after "
            f"{secs(r.served)} ({r.attempts} tries); receiver threads {r.threads_idle} idle, "
            f"{r.threads_held} while held"
        )
    n, p = results[node.name], results[peer.name]
    print(f"ratio peer/node: time to serve {ratio(p.served, n.served)}")
    summary.add("slots: sender served, s", "<= 3", n.served, p.served, "{:.2f}")
    summary.add("slots: threads while held", "-", n.threads_held, p.threads_held, "{:.0f}", ok=True)


# -- output --------------------------------------------------------------------------------


def secs(value: float | None) -> str:
    return "FAILED" if value is None else f"{value:.2f} s"


def ratio(peer: float | None, node: float | None) -> str:
    if peer is None or node is None:
        return "n/a"
    if node <= 0:
        return "inf" if peer > 0 else "n/a"
    return f"{peer / node:.1f}x"


@dataclass
class Summary:
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def add(
        self,
        figure: str,
        target: str,
        node: Any,
        peer: Any,
        fmt: str,
        *,
        ok: bool | None = None,
    ) -> None:
        """One row; ``ok`` defaults to comparing the node's figure with ``target``."""
        if ok is None:
            ok = node is not None and _meets(float(node), target)
        cells = ["-" if v is None else fmt.format(v) for v in (node, peer)]
        self.rows.append((figure, target, cells[0], cells[1], "" if ok else "MISSED"))

    def print(self) -> None:
        print(f"\n{'figure':<30} {'target':>8} {'dicomnode':>10} {'plain SCP':>10}")
        for figure, target, node, peer, verdict in self.rows:
            print(f"{figure:<30} {target:>8} {node:>10} {peer:>10}  {verdict}".rstrip())


def _meets(value: float, target: str) -> bool:
    op, _, bound = target.partition(" ")
    limit = float(bound)
    return value <= limit if op == "<=" else value < limit


# -- main ----------------------------------------------------------------------------------


def run(work: Path, summary: Summary) -> None:
    node_proc = node_process(work / "node").start()
    peer_proc = PeerProcess(work / "peer").start()
    try:
        node, peer = receiver("dicomnode", node_proc), receiver("plain-scp", peer_proc)
        section_oversized(node, peer, summary)
        if not peer.alive():  # not expected: the peer survives the 300 MB
            peer_proc.stop()
            peer = receiver("plain-scp", PeerProcess(work / "peer").start())
        section_framing(node, peer, summary)
        if not peer.alive():
            peer_proc.stop()
            peer = receiver("plain-scp", PeerProcess(work / "peer").start())
        section_flood(node, peer, work, summary)
        section_slots(node, peer, summary)
    finally:
        node_proc.stop()
        peer_proc.stop()
    pki = make_pki(work / "pki")
    client: TlsArgs = (pki.client_context(cert=pki.client_pem), "localhost")
    node_proc = node_process(work / "node-tls", pki.server_config())
    node_proc.tls = client
    peer_proc = PeerProcess(work / "peer-tls", tls_dir=pki.ca_file.parent, tls=client)
    try:
        node_proc.start()
        peer_proc.start()
        section_tls(receiver("dicomnode", node_proc), receiver("plain-scp", peer_proc), summary)
    finally:
        node_proc.stop()
        peer_proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--serve-peer", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--tls", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_peer:
        serve_peer(args.serve_peer, args.tls)
        return 0
    if not Path(STORESCU).exists():
        print(f"{STORESCU} (dcmtk) is needed", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="dicomnode-hostile-", dir=os.environ.get("BENCH_DIR")))
    summary = Summary()
    started = time.perf_counter()
    try:
        run(work, summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary.print()
    print(f"\n(run took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
