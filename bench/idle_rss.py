"""Memory of an idle node and the cost of the first job after idle (issue 16 item 8).

Starts ``dicomnode serve`` with the three shipped pipelines routed (shadow routes, nothing is
sent), then prints the total RSS of the node and its child processes (from ``/proc``):
right after start-up, after one chest CT job, after ``workers.keep_warm`` ran out, and the
wall time of a job on a warm child versus the first job after idle.

    python -m bench.idle_rss [--keep-warm SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from dicomnode.demo.processes import free_port, stop_process
from dicomnode.synthetic import chest_ct, write_study


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as handle:
            out.extend(int(p) for p in handle.read().split())
    return out


def tree_rss(pid: int) -> dict[int, tuple[str, int]]:
    """``pid -> (name, RSS bytes)`` of ``pid`` and its descendants."""
    found: dict[int, tuple[str, int]] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            todo.extend(_children(current))
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        found[current] = (fields["Name"].strip(), rss)
    return found


def _report(label: str, pid: int) -> int:
    tree = tree_rss(pid)
    total = sum(rss for _, rss in tree.values())
    parts = ", ".join(f"{name} {rss / 2**20:.0f}" for name, rss in tree.values())
    print(f"{label}: {total / 2**20:.0f} MB in {len(tree)} process(es) ({parts})", flush=True)
    return total


def _config(root: Path, port: int, http: int, keep_warm: float) -> dict[str, Any]:
    def route(name: str, pipeline: str, when: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"name": name, "pipeline": pipeline, "when": when, "shadow": True, **extra}

    return {
        "data_dir": str(root / "data"),
        "node": {"host": "127.0.0.1", "port": port},
        "storage": {"min_free": "1MB"},
        "stability": {"series_seconds": 1, "study_seconds": 2},
        "http": {"port": http},
        "workers": {"device": "cpu", "poll_seconds": 0.2}
        | ({"keep_warm": keep_warm} if keep_warm >= 0 else {}),
        "routes": [
            route("ct", "lung_nodule", {"Modality": "CT"}),
            route("mr", "brain_lesion", {"Modality": "MR"}),
            route("mg", "mammo_score", {"Modality": "MG"}, level="study"),
        ],
    }


def _send(port: int, files: list[Path]) -> None:
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
    assert assoc.is_established, "association refused"
    try:
        for file in files:
            status = assoc.send_c_store(dcmread(file))
            assert status and status.Status == 0, status
    finally:
        assoc.release()


def _jobs(http: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/jobs", timeout=5) as response:
        data = json.load(response)
    return list(data["jobs"] if isinstance(data, dict) else data)


def _run_job(port: int, http: int, seed: int, work: Path) -> float:
    """Send one CT series; seconds from the job's queueing to its success."""
    files = write_study(chest_ct(seed).datasets, work / f"ct{seed}")
    before = len(_jobs(http))
    _send(port, files)
    deadline = time.monotonic() + 600
    queued = None
    while time.monotonic() < deadline:
        jobs = _jobs(http)
        if len(jobs) > before and queued is None:
            queued = time.monotonic()
        done = [j for j in jobs if j.get("state") in ("succeeded", "dead", "failed", "refused")]
        if len(done) > before:
            assert all(j["state"] == "succeeded" for j in done), done
            return time.monotonic() - (queued or time.monotonic())
        time.sleep(0.05)
    raise TimeoutError("job did not finish")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-warm", type=float, default=20.0, help="-1: the default")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after start-up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dicomnode-rss-") as tmp:
        root = Path(tmp)
        port, http = free_port(), free_port()
        config = root / "dicomnode.yaml"
        config.write_text(yaml.safe_dump(_config(root, port, http, args.keep_warm)))
        log = open(root / "node.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnode.cli", "serve", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(args.settle)
            _report("idle after start-up", proc.pid)
            first = _run_job(port, http, 1, root)
            _report("after one CT job", proc.pid)
            warm = _run_job(port, http, 2, root)
            print(f"job on a warm child: {warm:.1f} s; first job: {first:.1f} s", flush=True)
            idle = max(args.keep_warm, 0) + 5
            time.sleep(idle)
            _report(f"idle {idle:g} s after the last job", proc.pid)
            cold = _run_job(port, http, 3, root)
            print(f"first job after idle: {cold:.1f} s (warm: {warm:.1f} s)", flush=True)
        finally:
            stop_process(proc, grace=30)
            log.close()
            if os.environ.get("BENCH_LOG"):
                print((root / "node.log").read_text()[-3000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
