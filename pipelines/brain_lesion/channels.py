"""The bundle's input and output channels, from its metadata (no torch: ``check`` uses this)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["input_roles", "lesion_channel"]

_LESION_CHANNELS = ("lesion", "whole tumor", "whole tumour", "wt")


def _channel_def(metadata: Mapping[str, Any], side: str, name: str) -> dict[str, str]:
    fmt = metadata.get("network_data_format", {}).get(side, {}).get(name, {})
    return {str(k): str(v) for k, v in (fmt.get("channel_def") or {}).items()}


def input_roles(metadata: Mapping[str, Any]) -> list[str]:
    """The input series a bundle's network takes (from its metadata), as role names.

    ``["flair"]`` for the demo bundle; BraTS: ``["t1c", "t1", "t2", "flair"]``.
    """
    channels = _channel_def(metadata, "inputs", "image")
    if not channels:
        return ["flair"]
    return [channels[k].strip().lower() for k in sorted(channels, key=int)]


def lesion_channel(metadata: Mapping[str, Any]) -> int:
    """Output channel holding the lesion (BraTS: "Whole tumor"); 0 when none is named."""
    for key, name in _channel_def(metadata, "outputs", "pred").items():
        if name.strip().lower() in _LESION_CHANNELS:
            return int(key)
    return 0
