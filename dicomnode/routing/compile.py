"""Turning the ``routes:`` of the config into compiled :class:`Route` objects."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from pydicom.datadict import tag_for_keyword
from pydicom.tag import Tag

from dicomnode.errors import ConfigError
from dicomnode.routing.conditions import Condition, Equals, Not, OneOf, Present, Range, Regex
from dicomnode.routing.route import Clause, NamedInput, Route
from dicomnode.routing.schema import (
    SPECIAL_KEYS,
    ConditionSpec,
    NotCondition,
    PresentCondition,
    RangeCondition,
    RegexCondition,
    RouteSpec,
)

__all__ = ["compile_condition", "compile_routes", "compile_when"]


def compile_condition(spec: ConditionSpec) -> Condition:
    """Compile one validated condition.

    Parameters
    ----------
    spec : ConditionSpec
        A value, a list of values, or a :class:`RegexCondition`, :class:`RangeCondition`,
        :class:`PresentCondition` or :class:`NotCondition`.

    Returns
    -------
    Condition

    Raises
    ------
    re.error
        The regex does not compile (cannot happen for a spec validated by :class:`RouteSpec`).
    """
    if isinstance(spec, RegexCondition):
        return Regex.compile(spec.regex)
    if isinstance(spec, RangeCondition):
        return Range(spec.min, spec.max)
    if isinstance(spec, PresentCondition):
        return Present(spec.present)
    if isinstance(spec, NotCondition):
        return Not(compile_condition(spec.negated))
    if isinstance(spec, list):
        return OneOf(tuple(Equals(value) for value in spec))
    return Equals(spec)


def compile_when(when: Mapping[str, ConditionSpec], section: str) -> tuple[Clause, ...]:
    """The clauses of a ``when``-style mapping (e.g. a route's ``priors.when``); ValueError
    names ``section`` and the key."""
    return _clauses(when, section)


def _clauses(when: Mapping[str, ConditionSpec], section: str) -> tuple[Clause, ...]:
    clauses = []
    for key, spec in when.items():
        try:
            condition = compile_condition(spec)
        except re.error as err:
            raise ValueError(f"{section}.{key}: bad regex {err.pattern!r}: {err.msg}") from None
        if key in SPECIAL_KEYS:
            clauses.append(Clause(key, condition))
            continue
        number = tag_for_keyword(key)
        if number is None:
            raise ValueError(f"{section}.{key}: unknown DICOM keyword {key!r}")
        clauses.append(Clause(key, condition, Tag(number)))
    return tuple(clauses)


def _compile_one(spec: RouteSpec) -> Route:
    """Compile one validated route; ValueError names the offending key."""
    inputs = tuple(
        NamedInput(name, _clauses(when, f"inputs.{name}"))
        for name, when in (spec.inputs or {}).items()
    )
    return Route(
        name=spec.name,
        pipeline=spec.pipeline,
        level=spec.level,
        when=_clauses(spec.when, "when"),
        send_to=tuple(spec.send_to),
        inputs=inputs,
        outputs=tuple(spec.outputs) if spec.outputs is not None else None,
        shadow=spec.shadow,
        priority=spec.priority,
    )


def _validate(index: int, raw: RouteSpec | Mapping[str, Any]) -> RouteSpec:
    if isinstance(raw, RouteSpec):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"a route is a mapping (name, pipeline, when, ...), got {type(raw).__name__}",
            key=f"routes[{index}]",
        )
    name = raw.get("name")
    where = f"routes[{index}] ({name})" if isinstance(name, str) and name else f"routes[{index}]"
    try:
        return RouteSpec.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        detail = (error.get("ctx") or {}).get("detail", error["msg"])
        raise ConfigError(str(detail), key=where) from None


def _known(kind: str, name: str, known: Collection[str] | None) -> str | None:
    if known is None or name in known:
        return None
    listed = ", ".join(sorted(known)) or "none configured"
    return f"unknown {kind} {name!r} (known: {listed})"


def compile_routes(
    specs: Iterable[RouteSpec | Mapping[str, Any]],
    *,
    pipelines: Collection[str] | None = None,
    destinations: Collection[str] | None = None,
) -> list[Route]:
    """Validate and compile the ``routes:`` of the config.

    Parameters
    ----------
    specs : iterable of RouteSpec or mapping
        The routes in config order: validated :class:`RouteSpec` objects, or the raw mappings
        read from YAML (validated here).
    pipelines : collection of str, optional
        Names of the known pipelines; when given, every route's ``pipeline`` must be one.
    destinations : collection of str, optional
        Names of the configured destinations; when given, every ``send_to`` entry must be one.

    Returns
    -------
    list of Route
        The compiled routes, in config order.

    Raises
    ------
    ConfigError
        For the first invalid route. ``key`` names it by index and name (``routes[1]
        (brain-flair)``), the message names the offending key and value, e.g.
        ``when.SeriesDescription: bad regex '(': missing ), unterminated subpattern``.
    """
    routes: list[Route] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(specs):
        spec = _validate(index, raw)
        where = f"routes[{index}] ({spec.name})"
        if spec.name in seen:
            raise ConfigError(
                f"name: {spec.name!r} is already the name of routes[{seen[spec.name]}]; "
                "route names must be unique",
                key=where,
            )
        seen[spec.name] = index
        problem = _known("pipeline", spec.pipeline, pipelines)
        if problem:
            raise ConfigError(f"pipeline: {problem}", key=where)
        for position, destination in enumerate(spec.send_to):
            problem = _known("destination", destination, destinations)
            if problem:
                raise ConfigError(f"send_to[{position}]: {problem}", key=where)
        try:
            routes.append(_compile_one(spec))
        except ValueError as err:
            raise ConfigError(str(err), key=where) from None
    return routes
