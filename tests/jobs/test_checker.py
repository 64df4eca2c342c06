"""Pipeline checks in a child process: the node's main process never imports a pipeline."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dicomnode.jobs.checker import IsolatedChecker
from dicomnode.pipeline import PipelineInputs, SeriesInput
from testkit.seriesgen import specs, write_series
from tests.jobs.helpers import config


@pytest.fixture
def checker(tmp_path):
    cfg = config(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    checker = IsolatedChecker(cfg, timeout=60)
    checker.start()
    yield checker
    checker.close()


def _inputs(tmp_path, description):
    (spec,) = specs(description.replace(":", "-"), 1)
    files = write_series(spec, tmp_path / description.replace(":", "-"), description=description)
    series = SeriesInput(spec.study_uid, spec.series_uid, tuple(files), "CT", description)
    return PipelineInputs(spec.study_uid, (series,))


def test_version_refusal_and_problems_come_back(checker, tmp_path):
    ok = checker.check("toy", _inputs(tmp_path, "plain"))
    assert (ok.version, ok.refused, ok.problem) == ("1.0", None, None)
    assert ok.default_outputs == ("sr", "seg", "summary")
    refused = checker.check("toy", _inputs(tmp_path, "TOY:refuse"))
    assert refused.refused == "series asked to be refused (TOY:refuse)"
    unknown = checker.check("nope", None)
    assert unknown.version is None and "unknown pipeline 'nope'" in (unknown.problem or "")
    assert checker.check("toy", None).version == "1.0"  # the child survived the errors


def test_a_real_pipeline_is_checked_without_torch_in_the_calling_process(tmp_path):
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="dicomnode.pipelines")}
    assert "lung_nodule" in names, "pip install -e . registers the pipelines' entry points"
    script = textwrap.dedent(
        f"""
        import sys
        from dicomnode.config import parse_config
        from dicomnode.jobs.checker import IsolatedChecker
        cfg = parse_config({{"data_dir": {str(tmp_path)!r}, "workers": {{"device": "cpu"}}}})
        checker = IsolatedChecker(cfg)
        checker.start()
        result = checker.check("lung_nodule", None)
        checker.close()
        print(result.version, result.problem, "torch" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    version, problem, torch_loaded = out.stdout.split()
    assert version and problem == "None" and torch_loaded == "False"
