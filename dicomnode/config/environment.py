"""``${NAME}`` in config values: secrets and per-process settings from the environment.

A config file can then be shared (a Kubernetes ConfigMap, a compose file's config) while the
secrets stay in the environment (a Secret, an env file): ``http.token: ${DICOMNODE_HTTP_TOKEN}``,
``database.url: ${DICOMNODE_DATABASE_URL}``. Only string values are expanded, never keys;
``$${`` is a literal ``${``. A variable that is not set is a :class:`ConfigError` naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from dicomnode.errors import ConfigError

__all__ = ["expand_environment"]

_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_environment(data: Any, *, source: str, environ: Mapping[str, str] | None = None) -> Any:
    """``data`` (parsed YAML) with every ``${NAME}`` in its strings replaced by ``$NAME``.

    Parameters
    ----------
    data : Any
        Parsed YAML: mappings, lists and scalars.
    source : str
        The file name for error messages.
    environ : Mapping, optional
        Where the values come from (default ``os.environ``).

    Raises
    ------
    ConfigError
        A referenced variable is not set (naming the key path and the variable).
    """
    env = os.environ if environ is None else environ
    return _expand(data, env, source, "")


def _expand(value: Any, env: Mapping[str, str], source: str, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, env, source, _join(key, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name not in env:
            raise ConfigError(f"environment variable {name} is not set", source=source, key=key)
        return env[name]

    return _REFERENCE.sub(substitute, value)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
