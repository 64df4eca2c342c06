"""The CLI commands of the job engine: ``route explain``, ``jobs``, ``retry``, ``worker``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from dicomnode.store.db import open_database
from testkit.dicomgen import CANARY_ID, CANARY_NAME
from testkit.seriesgen import specs, write_series

TOY = "testkit.toy_pipeline:ToyPipeline"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, list]:
    config = {
        "data_dir": str(tmp_path / "data"),
        "destinations": {"pacs": {"ae_title": "PACS", "host": "127.0.0.1", "port": 104}},
        "pipelines": {"toy": {"class": TOY}},
        "routes": [
            {
                "name": "big-ct",
                "pipeline": "toy",
                "when": {"Modality": "CT", "instances": {"min": 3}},
                "send_to": ["pacs"],
            },
            {
                "name": "mr-study",
                "pipeline": "toy",
                "level": "study",
                "when": {"Modality": "MR"},
                "send_to": ["pacs"],
            },
        ],
    }
    path = tmp_path / "dicomnode.yaml"
    path.write_text(yaml.safe_dump(config))
    big, small, mr = specs("explain", 3)
    small = replace(small, count=2)
    mr = replace(mr, modality="MR")
    tree = tmp_path / "tree"
    write_series(big, tree / "big")
    write_series(small, tree / "small")
    write_series(mr, tree / "mr")
    (tree / "notes.txt").write_text("not DICOM")
    return path, tree, [big, small, mr]


def test_route_explain_table_and_json(setup):
    path, tree, (big, small, mr) = setup
    out = cli("route", "explain", str(tree), "-c", str(path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["SERIES", "ROUTE", "RESULT"]
    big_row = next(line for line in lines if big.series_uid[-8:] in line and "big-ct" in line)
    assert big_row.rstrip().endswith("MATCH")
    small_row = next(line for line in lines if small.series_uid[-8:] in line)
    assert "no: instances: expected >= 3, got 2" in small_row
    mr_row = next(line for line in lines if mr.series_uid[-8:] in line)
    assert "no: Modality: expected 'CT', got 'MR'" in mr_row
    assert any("mr-study" in line and "MATCH (1 series)" in line for line in lines)
    assert "1 file skipped" in out.stdout
    assert CANARY_NAME not in out.stdout and CANARY_ID not in out.stdout
    out = cli("route", "explain", str(tree), "-c", str(path), "--json")
    document = json.loads(out.stdout)
    assert document["skipped_files"] == 1
    by = {(r["route"], r["series_uid"]): r for r in document["rows"]}
    assert by[("big-ct", big.series_uid)]["matched"] is True
    assert by[("big-ct", small.series_uid)]["reason"] == "instances: expected >= 3, got 2"


def test_route_explain_errors_are_one_line(setup, tmp_path):
    path, _, _ = setup
    out = cli("route", "explain", str(tmp_path / "missing"), "-c", str(path))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no such file or folder" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"routes": [{"name": "r1", "pipeline": "nope", "when": {}, "shadow": True}]})
    )
    out = cli("route", "explain", str(tmp_path), "-c", str(bad))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "routes[0] (r1): pipeline: unknown pipeline 'nope'" in out.stderr
    out = cli("route", "-c", str(path))
    assert out.returncode == 2


def test_jobs_and_retry_on_an_empty_queue(setup):
    path, _, _ = setup
    out = cli("jobs", "-c", str(path))
    assert out.returncode == 1 and "no current schema" in out.stderr
    cfg = yaml.safe_load(path.read_text())
    open_database(f"sqlite:///{cfg['data_dir']}/state.db").dispose()
    out = cli("jobs", "-c", str(path))
    assert out.returncode == 0 and out.stdout == "no jobs\n"
    assert json.loads(cli("jobs", "-c", str(path), "--json").stdout) == []
    out = cli("jobs", "--state", "bogus", "-c", str(path))
    assert out.returncode == 2
    out = cli("retry", "7", "-c", str(path))
    assert out.returncode == 1 and "no job 7" in out.stderr


def test_check_reports_pipelines_and_echoes_destinations(tmp_path):
    from testkit.nodeproc import free_port
    from tests.export.peers import StatusSCP

    scp = StatusSCP(0).start()
    try:
        config = {
            "data_dir": str(tmp_path / "data"),
            "storage": {"min_free": "1MB"},
            "destinations": {
                "up": {"ae_title": "PACS", "host": "127.0.0.1", "port": scp.port},
                "down": {"ae_title": "PACS", "host": "127.0.0.1", "port": free_port()},
            },
            "pipelines": {"toy": {"class": TOY}, "gone": {"class": "no.such.module:Nope"}},
            "routes": [
                {"name": "a", "pipeline": "toy", "send_to": ["up"]},
                {"name": "b", "pipeline": "gone", "send_to": ["down"]},
            ],
        }
        path = tmp_path / "dicomnode.yaml"
        path.write_text(yaml.safe_dump(config))
        open_database(f"sqlite:///{tmp_path / 'data' / 'state.db'}").dispose()
        out = cli("check", "-c", str(path))
    finally:
        scp.stop()
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(line.startswith("ok") and "pipeline toy" in line for line in lines)
    gone = next(line for line in lines if "pipeline gone" in line)
    assert gone.startswith("FAIL") and "ModuleNotFoundError" in gone
    assert any(line.startswith("ok") and "destination up" in line for line in lines)
    down = next(line for line in lines if "destination down" in line)
    assert down.startswith("FAIL") and "peer down" in down
