"""``dicomnode demo``: the README's first command, run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from dicomnode.demo.orthanc import ORTHANC

PIPELINES = ("lung_nodule", "brain_lesion", "mammo_score")


def _demo_env(tmp_path: Path) -> dict[str, str]:
    """TMPDIR of its own, so the test sees what the demo leaves behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return {**os.environ, "TMPDIR": str(tmp)}


def _processes_under(folder: Path) -> list[str]:
    """Command lines of running processes that mention ``folder`` (the node, Orthanc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if str(folder) in cmdline:
            found.append(cmdline)
    return found


def test_demo_without_orthanc_prints_the_table_and_leaves_readable_results(tmp_path):
    out = tmp_path / "results"
    env = _demo_env(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", "demo", "--no-orthanc", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = run.stdout.split("STUDY", 1)[1]
    for pipeline in PIPELINES:
        assert pipeline in table
    assert "RESEARCH USE ONLY" in run.stdout
    assert str(out.resolve()) in run.stdout
    assert "SYNTHETIC" not in run.stdout + run.stderr  # no (synthetic) patient names
    for pipeline in PIPELINES:
        files = sorted((out / pipeline).glob("*.dcm"))
        kinds = {path.name.split("_", 1)[0] for path in files}
        assert {"SR", "OT"} <= kinds, f"{pipeline}: {kinds}"
        for path in files:
            ds = pydicom.dcmread(path)
            assert pipeline in ds.SeriesDescription
            if ds.Modality == "SR":
                assert isinstance(hd.sr.srread(path).content, hd.sr.MeasurementReport)
            elif ds.Modality == "SEG":
                assert hd.seg.segread(path).number_of_segments >= 1
    assert "RESEARCH USE ONLY" in (out / "results.txt").read_text()
    # without --keep the temporary data dir is gone, and no process is left
    assert not list(Path(env["TMPDIR"]).glob("dicomnode-demo-*"))
    assert _processes_under(Path(env["TMPDIR"])) == []


def test_demo_with_orthanc_reads_the_results_back_from_orthanc(tmp_path):
    assert Path(ORTHANC).exists(), "Orthanc is missing (scripts/setup.sh installs it)"
    out = tmp_path / "results"
    env = _demo_env(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Orthanc listening" in run.stdout
    assert run.stdout.count("Orthanc holds") == 3
    for pipeline in PIPELINES:
        assert len(list((out / pipeline).glob("SR_*.dcm"))) == 1
    assert _processes_under(Path(env["TMPDIR"])) == []


def test_failure_is_one_line_and_keeps_the_data_dir(tmp_path):
    env = _demo_env(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", "demo", "--no-orthanc", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 1
    (line,) = [x for x in run.stderr.splitlines() if x.startswith("dicomnode demo:")]
    assert line.startswith("dicomnode demo: failed: no results after 1 s for: CT chest")
    (kept,) = Path(env["TMPDIR"]).glob("dicomnode-demo-*")
    assert (kept / "node.log").is_file() and str(kept) in run.stdout
    assert _processes_under(Path(env["TMPDIR"])) == []


def test_ctrl_c_stops_the_node_and_exits_130(tmp_path):
    env = _demo_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomnode.cli", "demo", "--no-orthanc", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until the node runs
            if "node" in line and "ready" in line:
                break
        else:
            pytest.fail(f"the demo ended before the node was ready: {proc.stderr}")
        assert _processes_under(Path(env["TMPDIR"]))  # the node subprocess
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    deadline = time.monotonic() + 10
    while _processes_under(Path(env["TMPDIR"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_under(Path(env["TMPDIR"])) == []
    assert not list(Path(env["TMPDIR"]).glob("dicomnode-demo-*"))


def test_the_node_runs_from_a_given_command_with_the_work_folder_open(tmp_path):
    """deploy/image/roundtrip.py: the node from another command (a container's, in CI) that
    gets ``{work}`` (to mount it) and a work folder another user can write to."""
    env = _demo_env(tmp_path)
    wrapper = 'echo "node command in {work}"; exec "$0" "$@"'
    script = Path(__file__).resolve().parents[2] / "deploy" / "image" / "roundtrip.py"
    run = subprocess.run(
        [sys.executable, str(script), "--timeout", "1", "--"]
        + ["sh", "-c", wrapper, sys.executable, "-m", "dicomnode.cli"],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stderr
    assert "node            ready" in run.stdout  # the wrapped node served
    (kept,) = Path(env["TMPDIR"]).glob("dicomnode-demo-*")
    assert f"node command in {kept}\n" in (kept / "node.log").read_text()
    assert kept.stat().st_mode & 0o777 == 0o777
    assert _processes_under(Path(env["TMPDIR"])) == []
