"""Ingest benchmark: the node against dcmtk's storescp and Orthanc, same machine, same run.

Sends one generated 300-slice 512x512 CT with dcmtk's ``storescu`` to the node, to
``storescp`` and to Orthanc (single association, alternating, best of N), then four series over
four parallel associations to each (best of N), and prints throughput ratios, the CPU seconds
per instance of each receiver (user + system from ``/proc``, its children included, over the
sends; the lowest of the N) and the node's peak RSS. Each receiver starts fresh before each
send (empty store); a node is left to settle (its children's start-up imports) first.

storescp has no fsync option; it is measured as shipped and with ``--exec-on-reception "sync
FILE" --exec-sync`` (an fsync per received file, the nearest to what the node does). The node
fsyncs every file and its directory before answering Success (SQLite WAL with
``synchronous=NORMAL``: start-up recovery indexes files whose rows a power loss took). Orthanc
(Debian's, ``SyncStorageArea`` on: it fsyncs) runs with ``TCP_NODELAY=1`` (PITFALLS: Nagle),
as :class:`dicomnode.demo.orthanc.Orthanc` starts it.

Each node is measured with each ``node.processes`` of ``--processes`` (default 1 and 2: the
SCP in the node's process, and two SCP processes sharing the port).

Usage: ``python bench/ingest.py [--slices 300] [--repeat 3] [--processes 1 2]``. Prints a
table; exits 0.

Targets (issue 18): single association >= 1.0x storescp +sync and >= 2x Orthanc; four
associations >= 1.5x single; node peak RSS < 300 MB with 4 concurrent series. A shortfall is
reported, not asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from dicomnode.demo.orthanc import Orthanc
from dicomnode.demo.processes import free_port, stop_process

ENV = {**os.environ, "TCP_NODELAY": "1"}
STORESCU = "/usr/bin/storescu"
STORESCP = "/usr/bin/storescp"


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def make_series(out: Path, slices: int, seeds: list[int]) -> list[Path]:
    from dicomnode.synthetic import chest_ct, write_study

    dirs = []
    for seed in seeds:
        study = chest_ct(seed, shape=(512, 512, slices))
        directory = out / f"ct{seed}"
        write_study(study.datasets, directory)
        dirs.append(directory)
    return dirs


def send(port: int, directory: Path) -> float:
    """Send a folder in one association; seconds."""
    started = time.perf_counter()
    subprocess.run(
        [STORESCU, "-aec", "DICOMNODE", "+sd", "-nh", "127.0.0.1", str(port), str(directory)],
        env=ENV,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def send_parallel(port: int, directories: list[Path]) -> float:
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [STORESCU, "-aec", "DICOMNODE", "+sd", "-nh", "127.0.0.1", str(port), str(d)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for d in directories
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError("storescu failed")
    return time.perf_counter() - started


@dataclass
class Peer:
    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    port: int
    reset: Callable[[], None]
    proc: subprocess.Popen[bytes] | None = None

    def up(self) -> None:
        self.proc = self.start()
        wait_port(self.port)

    def down(self) -> None:
        stop_process(self.proc, grace=20)

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) the peer has used so far, children included."""
        return float("nan") if self.proc is None else tree_cpu(self.proc.pid)


def storescp_peer(work: Path, *, fsync: bool) -> Peer:
    port = free_port()
    out = work / ("scp-fsync" if fsync else "scp")

    def start() -> subprocess.Popen[bytes]:
        out.mkdir(parents=True, exist_ok=True)
        cmd = [STORESCP, "--fork", "-pdu", "131072", "-od", str(out)]
        if fsync:
            cmd += ["-xcr", "sync #p/#f", "-xs"]
        return subprocess.Popen(
            [*cmd, str(port)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def reset() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)

    return Peer("storescp" + (" +sync" if fsync else ""), start, port, reset)


def orthanc_peer(work: Path) -> Peer:
    root = work / "orthanc"
    orthanc = Orthanc(root, http_port=free_port(), dicom_port=free_port())

    def start() -> subprocess.Popen[bytes]:
        orthanc.start()
        assert orthanc.proc is not None
        return orthanc.proc

    def reset() -> None:
        was_up = peer.proc is not None and peer.proc.poll() is None
        peer.down()
        shutil.rmtree(root, ignore_errors=True)
        if was_up:
            peer.up()

    peer = Peer("orthanc", start, orthanc.dicom_port, reset)
    return peer


def node_peer(work: Path, processes: int) -> Peer:
    port = free_port()
    root = work / f"node-p{processes}"
    config = root / "dicomnode.yaml"

    def start() -> subprocess.Popen[bytes]:
        root.mkdir(parents=True, exist_ok=True)
        config.write_text(
            yaml.safe_dump(
                {
                    "data_dir": str(root / "data"),
                    "node": {"host": "127.0.0.1", "port": port, "processes": processes},
                    "storage": {"min_free": "1GB"},
                    "stability": {"series_seconds": 3600, "study_seconds": 3600},
                    "logging": {"level": "WARNING"},
                    "http": {"enabled": False},
                }
            )
        )
        return subprocess.Popen(
            [sys.executable, "-m", "dicomnode.cli", "serve", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "node.log", "ab"),  # noqa: SIM115
        )

    def reset() -> None:
        was_up = peer.proc is not None and peer.proc.poll() is None
        peer.down()
        shutil.rmtree(root / "data", ignore_errors=True)
        if was_up:
            peer.up()
            assert peer.proc is not None
            settle(peer.proc.pid)

    peer = Peer(f"dicomnode p{processes}", start, port, reset)
    return peer


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (a node's SCP processes and other children)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children that ended; 0 once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, its children that ended and its live ones (one level)."""
    return sum(process_cpu(p) for p in [pid, *children(pid)])


def settle(pid: int, *, quiet: float = 0.05, timeout: float = 60) -> None:
    """Wait until ``pid`` and its children use under ``quiet`` of a core (start-up done)."""
    deadline = time.monotonic() + timeout
    last = tree_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = tree_cpu(pid)
        if now - last < quiet * 0.5:
            return
        last = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="node.processes of each node measured (default: 1 2)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicomnode-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        t0 = time.perf_counter()
        dirs = make_series(work / "src", args.slices, [101, 102, 103, 104])
        size_mb = sum(p.stat().st_size for p in dirs[0].iterdir()) / 1e6
        print(
            f"generated 4 series of {args.slices} slices 512x512 ({size_mb:.0f} MB each) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        nodes = [node_peer(work, n) for n in args.processes]
        peers = [
            *nodes,
            storescp_peer(work, fsync=False),
            storescp_peer(work, fsync=True),
            orthanc_peer(work),
        ]
        for peer in peers:
            peer.up()
        try:
            measure(args, dirs, peers, len(nodes), size_mb)
        finally:
            for peer in peers:
                peer.down()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def measure(
    args: argparse.Namespace, dirs: list[Path], peers: list[Peer], nodes: int, size_mb: float
) -> None:
    """Time the sends and print the table (the first ``nodes`` peers are nodes)."""
    single: dict[str, float] = {p.name: float("inf") for p in peers}
    parallel: dict[str, float] = {p.name: float("inf") for p in peers}
    cpu1: dict[str, float] = {p.name: float("inf") for p in peers}
    cpu4: dict[str, float] = {p.name: float("inf") for p in peers}
    rounds: list[tuple[dict[str, float], dict[str, float], Callable[[int], float]]] = [
        (single, cpu1, lambda port: send(port, dirs[0])),
        (parallel, cpu4, lambda port: send_parallel(port, dirs)),
    ]
    for times, cpu, send_to in rounds:
        for _ in range(args.repeat):
            for peer in peers:  # alternate peers inside each repetition
                peer.reset()
                before = peer.cpu_seconds()
                times[peer.name] = min(times[peer.name], send_to(peer.port))
                cpu[peer.name] = min(cpu[peer.name], peer.cpu_seconds() - before)
    rss: dict[str, float] = {}
    for node in peers[:nodes]:
        assert node.proc is not None
        pids = [node.proc.pid, *children(node.proc.pid)]
        rss[node.name] = max(peak_rss_mb(pid) for pid in pids)
    print()
    print(
        f"{'peer':<16} {'1 assoc inst/s':>15} {'MB/s':>7} {'CPU ms/inst':>12} "
        f"{'4 assoc inst/s':>15} {'MB/s':>7} {'CPU ms/inst':>12}"
    )
    for peer in peers:
        one = args.slices / single[peer.name]
        four = 4 * args.slices / parallel[peer.name]
        ms1 = 1000 * cpu1[peer.name] / args.slices
        ms4 = 1000 * cpu4[peer.name] / (4 * args.slices)
        print(
            f"{peer.name:<16} {one:>15.1f} {one * size_mb / args.slices:>7.1f} {ms1:>12.2f} "
            f"{four:>15.1f} {four * size_mb / args.slices:>7.1f} {ms4:>12.2f}"
        )
    print("(CPU: the receiver's process and its children: storescp --fork, node SCP processes)")
    print()
    for node in peers[:nodes]:
        for ref in peers[nodes:]:
            _ratio(node.name, ref.name, single, parallel)
        print(
            f"{node.name}: 4 assoc / 1 assoc {4 * single[node.name] / parallel[node.name]:.2f} "
            f"(target >= 1.5); peak RSS of its largest process (4 concurrent series): "
            f"{rss[node.name]:.0f} MB (target < 300 MB)"
        )
    for node in peers[1:nodes]:
        _ratio(node.name, peers[0].name, single, parallel)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _ratio(name: str, ref: str, single: dict[str, float], parallel: dict[str, float]) -> None:
    """Print the throughput of ``name`` over that of ``ref`` (seconds: ref / name)."""
    print(
        f"ratio {name}/{ref}: 1 assoc {single[ref] / single[name]:.2f}, "
        f"4 assoc {parallel[ref] / parallel[name]:.2f}"
    )


if __name__ == "__main__":
    sys.exit(main())
