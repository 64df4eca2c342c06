"""Pipelines a node can run: entry points plus ``pipelines.<name>.class`` from the config.

``class: "package.module:Class"`` is the plugin mechanism next to the ``dicomnode.pipelines``
entry points: it loads a pipeline that is importable but not installed as a distribution
(site code, tests). It is imported lazily with :mod:`importlib` exactly like an entry point
(no ``eval``) and must be a :class:`dicomnode.pipeline.Pipeline` subclass; a config class
takes precedence over an entry point of the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint

from dicomnode.config.schema import Config
from dicomnode.pipeline.registry import ENTRY_POINT_GROUP, PipelineRegistry

__all__ = ["ConfiguredRegistry", "class_paths", "registry_for"]


class ConfiguredRegistry(PipelineRegistry):
    """A :class:`PipelineRegistry` that also knows ``name -> "module:Class"`` paths."""

    def add_class_path(self, name: str, path: str) -> None:
        """Make ``name`` load ``path`` (``package.module:Class``) on first use."""
        self._entry_points[name] = EntryPoint(name=name, value=path, group=ENTRY_POINT_GROUP)
        self._errors.pop(name, None)


def class_paths(config: Config) -> dict[str, str]:
    """``name -> "module:Class"`` of the pipelines the config gives a ``class``."""
    return {name: s.class_path for name, s in config.pipelines.items() if s.class_path}


def registry_for(config: Config | Mapping[str, str]) -> ConfiguredRegistry:
    """The registry of a node: entry points plus the config's class paths.

    Parameters
    ----------
    config : Config or mapping of str to str
        The node's config, or ``name -> class path`` pairs (in a worker's child process).
    """
    registry = ConfiguredRegistry()
    paths = class_paths(config) if isinstance(config, Config) else config
    for name, path in paths.items():
        if path:
            registry.add_class_path(name, path)
    return registry
