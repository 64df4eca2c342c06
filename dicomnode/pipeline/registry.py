"""The pipelines a node can run, found lazily: entry points plus class paths.

Two sources, one registry:

- the ``dicomnode.pipelines`` entry points of the installed distributions;
- ``pipelines.<name>.class: "package.module:Class"`` from the config (site code, tests): a
  pipeline that is importable but not installed as a distribution. A class path is imported
  with :mod:`importlib` exactly like an entry point (no ``eval``) and takes precedence over an
  entry point of the same name.

Listing pipelines imports nothing; a pipeline's module is imported the first time it is asked
for, and one that cannot be imported is reported with the reason, like pydicom's pixel-data
plugins. A child process rebuilds the same registry from :attr:`PipelineRegistry.class_paths`
(a plain, picklable mapping).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from dicomnode.errors import DicomNodeError
from dicomnode.pipeline.contract import Pipeline

__all__ = ["ENTRY_POINT_GROUP", "PipelineRegistry", "PipelineStatus", "PipelineUnavailable"]

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "dicomnode.pipelines"


class PipelineUnavailable(DicomNodeError):
    """A pipeline is unknown or cannot be loaded; the message says why."""


@dataclass(frozen=True)
class PipelineStatus:
    """Whether a named pipeline loads, and the reason when it does not."""

    name: str
    available: bool
    reason: str | None = None


class PipelineRegistry:
    """Pipelines by name: entry points, class paths, and classes registered in-process.

    Parameters
    ----------
    class_paths : mapping of str to str, optional
        ``name -> "package.module:Class"`` (the config's ``pipelines.<name>.class``, see
        :attr:`dicomnode.config.Config.class_paths`); each overrides an entry point of the
        same name. Empty paths are ignored.
    group : str
        The entry-point group to read.
    """

    def __init__(
        self, class_paths: Mapping[str, str] | None = None, *, group: str = ENTRY_POINT_GROUP
    ):
        self._class_paths = {name: path for name, path in (class_paths or {}).items() if path}
        self._entry_points: dict[str, EntryPoint] = {
            ep.name: ep for ep in entry_points(group=group)
        }
        self._entry_points.update(
            (name, EntryPoint(name=name, value=path, group=group))
            for name, path in self._class_paths.items()
        )
        self._loaded: dict[str, type[Pipeline]] = {}
        self._errors: dict[str, str] = {}

    @property
    def class_paths(self) -> dict[str, str]:
        """The class paths this registry was built with (for a child process's registry)."""
        return dict(self._class_paths)

    def register(self, cls: type[Pipeline]) -> None:
        """Add a pipeline class directly (overrides an entry point of the same name)."""
        self._loaded[cls.name] = cls
        self._errors.pop(cls.name, None)

    def names(self) -> list[str]:
        """Every known pipeline name (nothing is imported)."""
        return sorted(set(self._entry_points) | set(self._loaded))

    def get(self, name: str) -> type[Pipeline]:
        """The pipeline class called ``name``, imported on first use.

        Raises
        ------
        PipelineUnavailable
            Unknown name, import failure, or an object that is not a :class:`Pipeline`.
        """
        if name in self._loaded:
            return self._loaded[name]
        if name in self._errors:
            raise PipelineUnavailable(f"pipeline {name!r} is unavailable: {self._errors[name]}")
        ep = self._entry_points.get(name)
        if ep is None:
            known = ", ".join(self.names()) or "none"
            raise PipelineUnavailable(f"unknown pipeline {name!r} (known: {known})")
        try:
            cls = ep.load()
        except Exception as exc:  # ImportError, missing weights, syntax errors in a plugin...
            self._errors[name] = f"{type(exc).__name__}: {exc}"
            log.warning("pipeline unavailable", extra={"pipeline": name, "reason": str(exc)})
            raise PipelineUnavailable(f"pipeline {name!r} is unavailable: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Pipeline)):
            self._errors[name] = f"{ep.value} is not a dicomnode.pipeline.Pipeline subclass"
            raise PipelineUnavailable(f"pipeline {name!r} is unavailable: {self._errors[name]}")
        self._loaded[name] = cls
        return cls

    def status(self) -> list[PipelineStatus]:
        """Load every pipeline and report which are available."""
        out = []
        for name in self.names():
            try:
                self.get(name)
                out.append(PipelineStatus(name, True))
            except PipelineUnavailable:
                out.append(PipelineStatus(name, False, self._errors.get(name)))
        return out
