"""Print the SOP class and transfer syntax tables of ``docs/conformance.md``.

The tables list what the code registers: the SCP's supported presentation contexts
(:class:`dicomnode.net.scp.StorageSCP`) and the contexts the export senders
(:mod:`dicomnode.export.senders`) and the query SCU (:mod:`dicomnode.net.query`) propose.
Paste the output over the tables of the same name in the document when the code (or
pynetdicom/pydicom) changes; ``tests/test_conformance_doc.py`` fails until the document
matches the code again.

Usage::

    .venv/bin/python scripts/conformance_tables.py            # every table
    .venv/bin/python scripts/conformance_tables.py NAME ...   # only these tables
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from pydicom.uid import (
    UID,
    Comprehensive3DSRStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.presentation import DEFAULT_TRANSFER_SYNTAXES
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicomnode.net.query import FIND_TRANSFER_SYNTAXES
from dicomnode.net.retrieve import GET_STORAGE_TRANSFER_SYNTAXES
from dicomnode.net.scp import (
    ACCEPTED_TRANSFER_SYNTAXES,
    SIGNAL_SOP_CLASSES,
    SIGNAL_TRANSFER_SYNTAXES,
    VERIFICATION_TRANSFER_SYNTAXES,
)

#: The marker line above each table; ``tests/test_conformance_doc.py`` finds tables by it.
MARKER = "<!-- conformance-table: {} -->"

#: The SOP classes of the result objects (``dicomnode.results``: SEG, SR, summary image).
RESULT_SOP_CLASSES = [SegmentationStorage, Comprehensive3DSRStorage, SecondaryCaptureImageStorage]
#: What :class:`dicomnode.export.senders.DicomSender` proposes for each of them.
EXPORT_TRANSFER_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


def _storage_sop_classes() -> list[UID]:
    return [UID(str(cx.abstract_syntax)) for cx in AllStoragePresentationContexts]


def _uids(values: Sequence[str]) -> list[UID]:
    return [UID(str(v)) for v in values]


def _sop_rows(uids: Sequence[UID], scu: str, scp: str) -> list[str]:
    head = ["| SOP Class Name | SOP Class UID | SCU | SCP |", "|---|---|---|---|"]
    return head + [f"| {uid.name} | `{uid}` | {scu} | {scp} |" for uid in uids]


def _ts_rows(uids: Sequence[UID]) -> list[str]:
    head = ["| # | Transfer Syntax Name | Transfer Syntax UID |", "|---|---|---|"]
    return head + [f"| {i} | {uid.name} | `{uid}` |" for i, uid in enumerate(uids, start=1)]


TABLES: dict[str, Callable[[], list[str]]] = {
    "scp-verification-sop-class": lambda: _sop_rows([Verification], "No", "Yes"),
    "scp-verification-transfer-syntaxes": lambda: _ts_rows(VERIFICATION_TRANSFER_SYNTAXES),
    "scp-storage-sop-classes": lambda: _sop_rows(_storage_sop_classes(), "No", "Yes"),
    "scp-storage-transfer-syntaxes": lambda: _ts_rows(ACCEPTED_TRANSFER_SYNTAXES),
    "scp-signal-sop-classes": lambda: _sop_rows(_uids(SIGNAL_SOP_CLASSES), "No", "Yes"),
    "scp-signal-transfer-syntaxes": lambda: _ts_rows(SIGNAL_TRANSFER_SYNTAXES),
    "scu-verification-sop-class": lambda: _sop_rows([Verification], "Yes", "No"),
    "scu-verification-transfer-syntaxes": lambda: _ts_rows(_uids(DEFAULT_TRANSFER_SYNTAXES)),
    "scu-storage-sop-classes": lambda: _sop_rows(RESULT_SOP_CLASSES, "Yes", "No"),
    "scu-storage-transfer-syntaxes": lambda: _ts_rows(EXPORT_TRANSFER_SYNTAXES),
    "scu-find-sop-class": lambda: _sop_rows(
        [StudyRootQueryRetrieveInformationModelFind], "Yes", "No"
    ),
    "scu-find-transfer-syntaxes": lambda: _ts_rows(FIND_TRANSFER_SYNTAXES),
    "scu-retrieve-sop-classes": lambda: _sop_rows(
        [StudyRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelGet],
        "Yes",
        "No",
    ),
    "scu-get-storage-transfer-syntaxes": lambda: _ts_rows(GET_STORAGE_TRANSFER_SYNTAXES),
}


def render(name: str) -> str:
    """The table ``name`` with its marker line, as it appears in the document."""
    return "\n".join([MARKER.format(name), "", *TABLES[name]()])


def main(argv: Sequence[str]) -> int:
    """Print the named tables (all when none is named); exit 2 on an unknown name."""
    names = list(argv) or list(TABLES)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        print(f"unknown table {unknown[0]!r}; known: {', '.join(TABLES)}", file=sys.stderr)
        return 2
    print("\n\n".join(render(n) for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
