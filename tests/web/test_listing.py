"""The filters and paging every list of the API shares (dicomnode.api.listing.page)."""

from __future__ import annotations

from datetime import UTC, datetime

from dicomnode.api.listing import ListQuery, ListSpec, Order, page

SPEC = ListSpec("at", "id", ("subject", "error"), Order.OLDEST)
ROWS = [
    {"id": 1, "at": "2026-01-01T10:00:00+00:00", "subject": "1.2.3", "error": None},
    {"id": 2, "at": "2026-01-02T10:00:00+00:00", "subject": "1.2.4", "error": "Refused: MR"},
    {"id": 3, "at": "2026-01-03T10:00:00+00:00", "subject": "1.2.5", "error": None},
]
MODALITIES = {"1.2.3": {"CT"}, "1.2.4": {"MR"}, "1.2.5": {"CT", "SEG"}}


def _ids(**given: object) -> tuple[list[int], int]:
    fields: dict[str, object] = {
        "modality": None,
        "since": None,
        "q": None,
        "limit": 1000,
        "offset": 0,
        "order": None,
        **given,
    }
    rows, total = page(
        ROWS,
        ListQuery(**fields),
        SPEC,
        lambda r: MODALITIES[r["subject"]],  # type: ignore[arg-type]
    )
    return [r["id"] for r in rows], total


def test_each_filter_and_the_paging():
    assert _ids() == ([1, 2, 3], 3)
    assert _ids(order=Order.NEWEST) == ([3, 2, 1], 3)
    assert _ids(modality="ct") == ([1, 3], 2)
    assert _ids(modality="SEG") == ([3], 1)
    assert _ids(since=datetime(2026, 1, 2, 10, tzinfo=UTC)) == ([2, 3], 2)
    assert _ids(since=datetime(2026, 1, 2, 11)) == ([3], 1)  # naive means UTC
    assert _ids(q="refused: mr") == ([2], 1)
    assert _ids(q="1.2.") == ([1, 2, 3], 3)
    assert _ids(limit=1, offset=1, order=Order.NEWEST) == ([2], 3)  # total before paging
    assert _ids(modality="CT", limit=1, order=Order.NEWEST) == ([3], 2)
