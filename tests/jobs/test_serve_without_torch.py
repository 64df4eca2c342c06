"""``dicomnode serve`` routing to the real pipelines never loads torch in its own process."""

from __future__ import annotations

import time
from importlib.metadata import entry_points
from pathlib import Path

from testkit.nodeproc import storescu
from testkit.seriesgen import specs, write_series


def test_real_pipeline_routes_are_checked_without_libtorch_in_serve(node_factory, tmp_path):
    names = {ep.name for ep in entry_points(group="dicomnode.pipelines")}
    assert "lung_nodule" in names, "pip install -e . registers the pipelines' entry points"
    node = node_factory(
        workers={"count": 0},
        stability={"series_seconds": 1, "study_seconds": 2},
        routes=[
            {"name": "chest", "pipeline": "lung_nodule", "when": {"Modality": "CT"}, "shadow": True}
        ],
    ).start()
    (spec,) = specs("torchless", 1, count=3)
    assert storescu(node.port, write_series(spec, tmp_path / "ct")).returncode == 0
    deadline = time.monotonic() + 60
    rows: list = []
    while time.monotonic() < deadline and not rows:
        rows = node.query("select state, pipeline_version, error from jobs")
        time.sleep(0.2)
    assert rows, node.log_text()[-2000:]
    state, version, _error = rows[0]
    assert state in ("queued", "refused") and version != "unknown"
    maps = Path(f"/proc/{node.proc.pid}/maps").read_text()
    assert "libtorch" not in maps
