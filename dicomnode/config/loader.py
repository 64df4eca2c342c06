"""Find, read and validate the YAML configuration.

Errors are :class:`~dicomnode.errors.ConfigError` naming the file, the key path and what was
expected, so the CLI can print them as one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from dicomnode.config.environment import expand_environment
from dicomnode.config.schema import (
    AnySource,
    ClientTlsConfig,
    Config,
    DicomDestination,
    DicomwebSource,
    HttpTlsConfig,
    TlsConfig,
)
from dicomnode.errors import ConfigError

_Tls = TypeVar("_Tls", TlsConfig, ClientTlsConfig, HttpTlsConfig)

__all__ = [
    "DEFAULTS",
    "check_routes",
    "find_config",
    "load_config",
    "parse_config",
]

#: Name shown as the source of a config made of built-in defaults only.
DEFAULTS = "<defaults>"
_ENV = "DICOMNODE_CONFIG"
_LOCAL = "dicomnode.yaml"


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Which config file applies: ``-c``, then ``$DICOMNODE_CONFIG``, then ``./dicomnode.yaml``.

    Returns ``None`` when none is given and no local file exists (built-in defaults apply).
    An explicit path or environment value that does not exist is an error.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError("config file not found", source=str(path))
        return path
    env = os.environ.get(_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"config file not found (from ${_ENV})", source=str(path))
        return path
    local = Path(_LOCAL)
    return local if local.is_file() else None


def load_config(explicit: str | os.PathLike[str] | None = None) -> tuple[Config, str]:
    """Load and validate the applicable config; returns it and its source name."""
    path = find_config(explicit)
    if path is None:
        return parse_config({}, source=DEFAULTS), DEFAULTS
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{problem}{where}", source=str(path)) from None
    data = expand_environment(data, source=str(path))
    return parse_config(data, source=str(path), base=path.parent), str(path)


def parse_config(data: Any, *, source: str = DEFAULTS, base: Path | None = None) -> Config:
    """Validate a mapping (the parsed YAML) into a :class:`Config`.

    Parameters
    ----------
    data : Any
        Parsed YAML; ``None`` (an empty file) means all defaults.
    source : str
        File name used in error messages.
    base : Path, optional
        Directory that relative paths in the config are relative to.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of sections, got {type(data).__name__}",
            source=source,
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise _as_config_error(exc, source) from None
    check_routes(config, source=source)
    return _resolve_paths(config, base) if base is not None else config


def check_routes(config: Config, *, source: str = DEFAULTS) -> None:
    """Compile ``routes`` against the known pipelines and destinations (imports no pipeline).

    The known pipelines are the names of the node's
    :class:`~dicomnode.pipeline.PipelineRegistry`: entry points plus ``pipelines.<name>.class``.

    Raises
    ------
    ConfigError
        Naming the route (``routes[1] (brain-flair)``) and the offending key.
    """
    from dicomnode.pipeline.registry import PipelineRegistry
    from dicomnode.routing import compile_routes

    try:
        compile_routes(
            config.routes,
            pipelines=PipelineRegistry(config.class_paths).names(),
            destinations=set(config.destinations),
        )
    except ConfigError as exc:
        raise ConfigError(exc.message, source=source, key=exc.key) from None


def _resolve_paths(config: Config, base: Path) -> Config:
    """Make relative filesystem paths relative to the config file's directory."""
    updates: dict[str, Any] = {}
    if not config.data_dir.is_absolute() and "data_dir" in config.model_fields_set:
        updates["data_dir"] = (base / config.data_dir).resolve()
    storage = config.storage
    if storage.path is not None and not storage.path.is_absolute():
        updates["storage"] = storage.model_copy(update={"path": (base / storage.path).resolve()})
    if config.node.tls is not None:
        tls = _resolve_files(config.node.tls, base)
        updates["node"] = config.node.model_copy(update={"tls": tls})
    if config.http.tls is not None:
        tls_http = _resolve_files(config.http.tls, base)
        updates["http"] = config.http.model_copy(update={"tls": tls_http})
    destinations = {
        name: dest.model_copy(update={"tls": _resolve_files(dest.tls, base)})
        for name, dest in config.destinations.items()
        if isinstance(dest, DicomDestination) and dest.tls is not None
    }
    if destinations:
        updates["destinations"] = {**config.destinations, **destinations}
    sources = {name: _resolve_source(source, base) for name, source in config.sources.items()}
    if sources != config.sources:
        updates["sources"] = sources
    return config.model_copy(update=updates) if updates else config


def _resolve_source(source: AnySource, base: Path) -> AnySource:
    """``source`` with its TLS files (DICOM) or ``ca`` (DICOMweb) relative to ``base``."""
    if isinstance(source, DicomwebSource):
        if source.ca is None or source.ca.is_absolute():
            return source
        return source.model_copy(update={"ca": (base / source.ca).resolve()})
    if source.tls is None:
        return source
    return source.model_copy(update={"tls": _resolve_files(source.tls, base)})


def _resolve_files(section: _Tls, base: Path) -> _Tls:
    """``section`` with its relative file paths made relative to ``base``."""
    resolved = {
        name: (base / value).resolve()
        for name, value in section
        if isinstance(value, Path) and not value.is_absolute()
    }
    return section.model_copy(update=resolved)


def _as_config_error(exc: ValidationError, source: str) -> ConfigError:
    """The first validation error as a one-line ConfigError (file, key path, expectation)."""
    err = exc.errors(include_url=False)[0]
    raw_loc = tuple(err["loc"])
    if len(raw_loc) > 2 and raw_loc[0] in _KINDS and raw_loc[2] in _KINDS[str(raw_loc[0])]:
        raw_loc = raw_loc[:2] + raw_loc[3:]  # the discriminator's tag is no config key
    loc = [str(part) for part in raw_loc]
    key = _dotted(raw_loc)
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        message = f"unknown key{hint}"
    else:
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] != "missing" and not isinstance(err.get("input"), dict | list):
            message += f" (got {err.get('input')!r})"
    more = exc.error_count() - 1
    if more:
        message += f" [and {more} more error{'s' if more > 1 else ''}]"
    return ConfigError(message, source=source, key=key or None)


#: The discriminators' tags of the sections whose entries come in kinds.
_KINDS = {"destinations": ("dicom", "stow"), "sources": ("dicom", "dicomweb")}
#: Sections that map user-chosen names to models: the name is skipped when listing keys.
_NAMED = ("destinations", "pipelines")


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_keys(parent: list[str]) -> list[str]:
    """Field names of the model found at ``parent`` (a key path) inside :class:`Config`."""
    model: type[BaseModel] = Config
    if len(parent) >= 2 and parent[0] in _NAMED:
        parent = [parent[0], *parent[2:]]
    for part in parent:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        inner = _model_of(field.annotation)
        if inner is None:
            return []
        model = inner
    return sorted(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
