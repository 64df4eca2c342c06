"""What a configuration reload (SIGHUP) changes, decided before anything is changed.

A running node takes a new ``node.allow``, ``routes``, ``destinations`` and ``logging.level``
from its re-read config file. Every other setting (ports, data dir, database URL, TLS files,
worker count, pipelines, timings...) keeps its running value until a restart; the plan names
those that differ so the node can say so. A new config whose routes do not compile against
what stays in force (its pipelines, its new destinations) is refused as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dicomnode.config.schema import Config
from dicomnode.errors import ConfigError
from dicomnode.pipeline.registry import PipelineRegistry
from dicomnode.routing import Route, compile_routes

__all__ = ["RELOADABLE", "ReloadPlan", "plan_reload"]

#: Settings a reload applies (key paths); a change anywhere else needs a restart.
RELOADABLE = ("node.allow", "routes", "destinations", "logging.level")


@dataclass(frozen=True)
class ReloadPlan:
    """The config to run with after a reload, built in full before anything is swapped.

    Attributes
    ----------
    config : Config
        The running config with the reloadable settings of the new one.
    routes : list of Route
        ``config.routes`` compiled.
    applied : list of str
        Reloadable key paths whose value changes (e.g. ``node.allow``).
    needs_restart : list of str
        Key paths that differ in the new config but keep their running value.
    """

    config: Config
    routes: list[Route]
    applied: list[str]
    needs_restart: list[str]


def plan_reload(
    running: Config, new: Config, *, source: str = "", registry: PipelineRegistry | None = None
) -> ReloadPlan:
    """What reloading ``new`` over ``running`` does.

    ``registry`` is the running node's (pipelines do not reload); default: built from
    ``running``.

    Raises
    ------
    ConfigError
        The new routes do not compile against the pipelines and destinations in force.
    """
    config = running.model_copy(
        update={
            "node": running.node.model_copy(update={"allow": new.node.allow}),
            "routes": new.routes,
            "destinations": new.destinations,
            "logging": running.logging.model_copy(update={"level": new.logging.level}),
        }
    )
    try:
        routes = compile_routes(
            config.routes,
            pipelines=(registry or PipelineRegistry(running.class_paths)).names(),
            destinations=set(config.destinations),
        )
    except ConfigError as exc:
        raise ConfigError(exc.message, source=source or exc.source, key=exc.key) from None
    changed = _differences(running.model_dump(mode="json"), new.model_dump(mode="json"))
    applied = [key for key in changed if _reloadable(key)]
    return ReloadPlan(config, routes, applied, [key for key in changed if key not in applied])


def _reloadable(key: str) -> bool:
    return any(key == path or key.startswith((f"{path}.", f"{path}[")) for path in RELOADABLE)


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Key paths under which ``old`` and ``new`` differ (mappings compared key by key)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if path in RELOADABLE:
                if old.get(key) != new.get(key):
                    found.append(path)  # one entry per reloadable setting, not its leaves
                continue
            found.extend(_differences(old.get(key), new.get(key), path))
        return found
    return [] if old == new else [prefix]
