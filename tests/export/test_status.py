"""How C-STORE and STOW-RS answers map to delivered / retry / dead."""

from __future__ import annotations

import pytest

from dicomnode.export import Verdict, classify_dimse, classify_http


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (0x0000, Verdict.DELIVERED),
        (0xB000, Verdict.DELIVERED),
        (0xB006, Verdict.DELIVERED),
        (0xB007, Verdict.DELIVERED),
        (0xA700, Verdict.RETRY),
        (0xA7FF, Verdict.RETRY),
        (None, Verdict.RETRY),
        (0x0122, Verdict.RETRY),
        (0xA900, Verdict.DEAD),
        (0xA9FF, Verdict.DEAD),
        (0xC000, Verdict.DEAD),
        (0xCFFF, Verdict.DEAD),
    ],
)
def test_dimse_status(status, verdict):
    assert classify_dimse(status) is verdict


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (202, Verdict.DELIVERED),
        (None, Verdict.RETRY),
        (503, Verdict.RETRY),
        (429, Verdict.RETRY),
        (400, Verdict.DEAD),
        (409, Verdict.DEAD),
    ],
)
def test_http_status(code, verdict):
    assert classify_http(code) is verdict
