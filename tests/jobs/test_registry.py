"""One pipeline registry: entry points plus the config's class paths, used everywhere."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from dicomnode.config import parse_config
from dicomnode.errors import ConfigError
from dicomnode.pipeline import ENTRY_POINT_GROUP, PipelineRegistry, PipelineUnavailable
from testkit.toy_pipeline import ToyPipeline

TOY = "testkit.toy_pipeline:ToyPipeline"


def test_names_are_entry_points_plus_class_paths_and_import_nothing():
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    registry = PipelineRegistry({"toy": TOY, "empty": ""})
    assert set(registry.names()) == installed | {"toy"}
    assert registry.class_paths == {"toy": TOY}
    assert registry._loaded == {}  # listing imports nothing
    assert registry.get("toy") is ToyPipeline


def test_a_class_path_overrides_an_entry_point_of_the_same_name():
    installed = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    if not installed:
        pytest.skip("no pipeline installed")
    registry = PipelineRegistry({installed[0]: TOY})
    assert registry.get(installed[0]) is ToyPipeline


def test_unavailable_pipelines_are_reported_with_the_reason():
    registry = PipelineRegistry({"gone": "no.such.module:Nope", "odd": "json:dumps"})
    status = {s.name: s for s in registry.status()}
    assert not status["gone"].available
    assert "ModuleNotFoundError" in (status["gone"].reason or "")
    assert not status["odd"].available
    assert "not a dicomnode.pipeline.Pipeline subclass" in (status["odd"].reason or "")
    with pytest.raises(PipelineUnavailable, match="unknown pipeline 'nope'"):
        registry.get("nope")


def test_the_config_and_the_loader_use_the_registry_names():
    route = {"name": "r", "pipeline": "toy", "shadow": True}
    config = parse_config({"pipelines": {"toy": {"class": TOY}}, "routes": [route]})
    assert config.class_paths == {"toy": TOY}
    assert "toy" in PipelineRegistry(config.class_paths).names()
    with pytest.raises(ConfigError, match="pipeline") as caught:
        parse_config({"routes": [{**route, "pipeline": "nope"}]})
    assert caught.value.key is not None and caught.value.key.startswith("routes[0]")
