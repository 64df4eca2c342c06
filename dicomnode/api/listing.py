"""Filters and paging shared by every list of the API: ``modality``, ``since``, ``q``,
``limit``, ``offset``, ``order`` (each list adds its own ``state``).

The total before paging goes into the ``X-Total-Count`` response header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import Query

__all__ = ["ListQuery", "ListSpec", "Order", "list_query", "page"]

Row = dict[str, Any]


class Order(str, Enum):
    """Which end of the list comes first."""

    NEWEST = "newest"
    OLDEST = "oldest"


@dataclass(frozen=True)
class ListQuery:
    """The common list parameters (see :func:`list_query`)."""

    modality: str | None
    since: datetime | None
    q: str | None
    limit: int
    offset: int
    order: Order | None


@dataclass(frozen=True)
class ListSpec:
    """How one list filters and orders.

    Parameters
    ----------
    time_key : str
        The ISO time field ``since`` filters on.
    sort_key : str
        The field ``order`` sorts by (oldest first when ascending).
    text_keys : tuple of str
        The fields ``q`` searches.
    default_order : Order
        The order when the query names none.
    """

    time_key: str
    sort_key: str
    text_keys: tuple[str, ...]
    default_order: Order


def list_query(
    modality: Annotated[
        str | None, Query(max_length=16, description="only rows of this modality (CT, MR, …)")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="only rows at or after this ISO 8601 time (UTC)")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=128, description="case-insensitive text in UIDs, names, errors"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="rows per page")] = 1000,
    offset: Annotated[int, Query(ge=0, le=10**9, description="rows skipped")] = 0,
    order: Annotated[Order | None, Query(description="newest or oldest first")] = None,
) -> ListQuery:
    """FastAPI dependency: the common list parameters, validated (422 when out of range)."""
    return ListQuery(modality, since, q, limit, offset, order)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def page(
    rows: Iterable[Row],
    query: ListQuery,
    spec: ListSpec,
    modalities: Callable[[Row], set[str]],
) -> tuple[list[Row], int]:
    """Filter, order and cut ``rows``; returns (the page, the total before paging).

    Parameters
    ----------
    rows : iterable of dict
        The rows.
    query : ListQuery
        The parameters.
    spec : ListSpec
        The list's fields.
    modalities : callable
        A row's modalities (``modality`` keeps rows that have the one asked).
    """
    selected = list(rows)
    if query.modality:
        wanted = query.modality.upper()
        selected = [r for r in selected if wanted in modalities(r)]
    if query.since is not None:
        since = _aware(query.since)
        selected = [
            r
            for r in selected
            if r.get(spec.time_key) and _aware(_parse(r[spec.time_key])) >= since
        ]
    if query.q:
        needle = query.q.casefold()
        selected = [
            r
            for r in selected
            if any(needle in str(r.get(k) or "").casefold() for k in spec.text_keys)
        ]
    selected.sort(key=lambda r: (r.get(spec.sort_key) is not None, r.get(spec.sort_key)))
    if (query.order or spec.default_order) is Order.NEWEST:
        selected.reverse()
    total = len(selected)
    return selected[query.offset : query.offset + query.limit], total


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)
