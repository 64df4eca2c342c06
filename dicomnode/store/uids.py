"""UID syntax of PS3.5 §9.1, checked before a UID becomes part of a filesystem path."""

from __future__ import annotations

import re

__all__ = ["is_valid_uid", "uid_problem"]

# Components are digits; no leading zero unless the component is "0"; 1..64 characters.
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def uid_problem(value: object) -> str | None:
    """Why ``value`` is not a valid UID, or ``None`` when it is.

    Parameters
    ----------
    value : object
        The candidate UID (a str from a dataset; anything else is invalid).

    Returns
    -------
    str or None
        A short reason without the value itself (it may be hostile or very long).
    """
    if not isinstance(value, str):
        return "missing" if value is None else "not a string"
    if not value:
        return "empty"
    if len(value) > 64:
        return f"longer than 64 characters ({len(value)})"
    if not _UID.fullmatch(value):
        return "not digits and dots with no leading zeros (PS3.5 9.1)"
    return None


def is_valid_uid(value: object) -> bool:
    """Whether ``value`` is a UID that PS3.5 §9.1 allows (and so a safe path part)."""
    return uid_problem(value) is None
