"""The fuzz harnesses: one input through the store handler, or through routing; the contract.

Each ``check_*`` function runs one input and returns a short outcome label (``stored``,
``0xC000``, ``skipped``...), or raises :class:`ContractViolation` (or lets an unexpected
exception escape) when the code under test broke its contract. ``tests/fuzz`` runs them for a
bounded number of inputs; ``bench/fuzz.py`` for many more.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from sqlalchemy import select

from dicomnode.errors import StoreRejected
from dicomnode.headers import read_instance
from dicomnode.routing import Route, SeriesFacts, compile_routes, evaluate, render_table, scan
from dicomnode.store.ingest import Store
from dicomnode.store.models import Instance
from testkit.mutate import Case

__all__ = [
    "FAILURE_RANGES",
    "ContractViolation",
    "check_routing_file",
    "check_routing_header",
    "check_store",
    "headers",
    "profile",
    "register_profiles",
    "routes",
]


class ContractViolation(AssertionError):
    """The code under test answered in a way its contract does not allow."""


#: DIMSE failure statuses a C-STORE may answer (PS3.4 B.2.3, PS3.7 C.4.2).
FAILURE_RANGES = ((0xA700, 0xA7FF), (0xA900, 0xA9FF), (0xC000, 0xCFFF))


#: Environment variable naming the hypothesis profile of ``tests/fuzz`` (default ``fuzz-ci``).
PROFILE_ENV = "DICOMNODE_FUZZ_PROFILE"


def register_profiles() -> None:
    """``fuzz-ci``: 250 inputs per property, derandomized (CI); ``fuzz-long``: 20 000, random."""
    common: dict[str, Any] = {
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        "database": None,
        "print_blob": True,
    }
    settings.register_profile("fuzz-ci", max_examples=250, derandomize=True, **common)
    settings.register_profile("fuzz-long", max_examples=20_000, derandomize=False, **common)


def profile() -> settings:
    """The profile the fuzz tests run under: ``$DICOMNODE_FUZZ_PROFILE``, else ``fuzz-ci``."""
    return settings.get_profile(os.environ.get(PROFILE_ENV, "fuzz-ci"))


register_profiles()


# -- store handler -------------------------------------------------------------------------


def check_store(store: Store, case: Case) -> str:
    """Ingest ``case`` as a received spool file; the outcome, after checking the store's state.

    Allowed: a result, or :class:`StoreRejected` with a failure status. Afterwards the spool
    is gone, every stored file has its row and every row its file (with the recorded size).
    """
    return _ingest(store, case)[0]


def _ingest(store: Store, case: Case) -> tuple[str, Path | None]:
    spool = store.incoming / "fuzz-rx.dcm"
    spool.write_bytes(case.data)
    path = None
    try:
        result = store.ingest(
            spool,
            sop_class_uid=case.sop_class_uid,
            sop_instance_uid=case.sop_instance_uid,
            calling_ae="FUZZ",
        )
        outcome, path = result.outcome.value, result.path
    except StoreRejected as exc:
        if not any(low <= exc.status <= high for low, high in FAILURE_RANGES):
            raise ContractViolation(f"status 0x{exc.status:04X} is not a failure status") from exc
        outcome = f"0x{exc.status:04X}"
    check_store_consistent(store)
    return outcome, path


def check_store_consistent(store: Store) -> None:
    """No spool file left, no file without a row, no row without its (whole) file."""
    left = list(store.incoming.iterdir())
    if left:
        raise ContractViolation(f"spool files left behind: {left}")
    on_disk = {
        path.relative_to(store.root).as_posix()
        for path in store.root.rglob("*")
        if path.is_file() and not path.relative_to(store.root).parts[0].startswith(".")
    }
    with store.db.session() as session:
        rows = {row.path: row for row in session.execute(select(Instance.path, Instance.size))}
    if on_disk != set(rows):
        raise ContractViolation(
            f"files without rows: {sorted(on_disk - set(rows))}; "
            f"rows without files: {sorted(set(rows) - on_disk)}"
        )
    for path, row in rows.items():
        if (store.root / path).stat().st_size != row.size:
            raise ContractViolation(f"{path}: size differs from the indexed size")


# -- routing --------------------------------------------------------------------------------

_ROUTE_SPECS = [
    {"name": "ct", "when": {"Modality": "CT", "SliceThickness": {"max": 3}}},
    {"name": "desc", "when": {"SeriesDescription": {"regex": "t1.*(post|gd)"}}},
    {"name": "type", "when": {"ImageType": ["ORIGINAL", "DERIVED"], "Rows": {"min": 1}}},
    {"name": "spacing", "when": {"PixelSpacing": {"min": 0.1, "max": 1.0}, "instances": 1}},
    {"name": "number", "when": {"SeriesNumber": 2, "BodyPartExamined": {"present": False}}},
    {"name": "who", "when": {"PatientName": {"not": "CANARY"}, "calling_ae": "FUZZ"}},
    {"name": "uid", "when": {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.2"}},
    {"name": "seq", "when": {"ReferencedImageSequence": {"present": True}}},
    {"name": "pos", "when": {"ImagePositionPatient": {"min": -1000}, "InstanceNumber": "1"}},
    {
        "name": "study",
        "level": "study",
        "when": {"Modality": ["CT", "MR"]},
        "inputs": {
            "a": {"SeriesDescription": {"regex": "^t"}},
            "b": {"SeriesDescription": {"not": {"regex": "^t"}}},
        },
    },
    {"name": "whole", "level": "study", "when": {"Rows": {"max": 65535}}},
]
#: (keyword, VR) of the attributes the routes read, for :func:`headers`.
ROUTED = [
    ("Modality", "CS"),
    ("SliceThickness", "DS"),
    ("SeriesDescription", "LO"),
    ("ImageType", "CS"),
    ("Rows", "US"),
    ("PixelSpacing", "DS"),
    ("SeriesNumber", "IS"),
    ("BodyPartExamined", "CS"),
    ("PatientName", "PN"),
    ("SOPClassUID", "UI"),
    ("ReferencedImageSequence", "SQ"),
    ("ImagePositionPatient", "DS"),
    ("InstanceNumber", "IS"),
    ("SpecificCharacterSet", "CS"),
]
_VRS = ["CS", "DS", "IS", "LO", "PN", "UI", "US", "SS", "FD", "UN", "OB", "SQ", "AT", "UT"]


def routes() -> list[Route]:
    """Routes that use every kind of condition on the attributes routing usually reads."""
    return compile_routes([{"pipeline": "p", "send_to": ["pacs"], **spec} for spec in _ROUTE_SPECS])


@dataclass(frozen=True)
class RawValue:
    """An attribute as the wire delivers it: any VR (or none), any bytes."""

    keyword: str
    vr: str | None
    value: bytes


def _raw_values() -> st.SearchStrategy[RawValue]:
    junk = st.one_of(
        st.binary(max_size=80),
        st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [b"", b" ", b"\x00", b"1e400", b"-0", b"nan", b"inf", b"1\\2\\", b"\\\\", b"\x1b$B"]
        ),
        st.lists(st.sampled_from(["1", "-2.5", "3e2", "x", "", " 4 "]), max_size=5).map(
            lambda parts: "\\".join(parts).encode()
        ),
    )
    return st.builds(
        RawValue,
        st.sampled_from([k for k, _ in ROUTED]),
        st.one_of(st.none(), st.sampled_from(_VRS), st.sampled_from([vr for _, vr in ROUTED])),
        junk,
    )


@st.composite
def headers(draw: st.DrawFn) -> Dataset:
    """A header whose routed attributes hold raw values of any VR and any bytes."""
    ds = Dataset()
    ds.StudyInstanceUID = draw(st.sampled_from(["1.2.3", "1.2.3\x00", " 1.2 "]))
    ds.SeriesInstanceUID = draw(st.sampled_from(["1.2.3.4", "x", "1.2.3.4.5"]))
    little, implicit = draw(st.booleans()), draw(st.booleans())
    for raw in draw(st.lists(_raw_values(), max_size=8)):
        tag = Tag(raw.keyword)
        vr = None if implicit else raw.vr
        ds[tag] = RawDataElement(tag, vr, len(raw.value), raw.value, 0, implicit, little)  # type: ignore[index]
    return ds


def check_routing_header(header: Dataset) -> str:
    """Facts of ``header`` through every route; only the documented ValueError may come out."""
    try:
        facts = SeriesFacts.from_header(header, instances=1, calling_ae="FUZZ")
    except ValueError:
        return "no-uids"
    return _match_all(facts)


def _match_all(facts: SeriesFacts) -> str:
    other = SeriesFacts(facts.study_uid, facts.series_uid + ".9", Dataset(), 3)
    matched = 0
    for route in routes():
        if route.level.value == "series":
            match = route.match(facts)
            _ = match.reason
            matched += match.matched
        else:
            study = route.match_study([facts, other])
            matched += study.matched
    _ = (facts.series_number, facts.modality, facts.description)
    return f"matched-{matched}"


def check_routing_file(store: Store, case: Case) -> str:
    """A received file as routing reads it: ``route explain``'s scan, then the node's path.

    :func:`dicomnode.routing.scan` must skip what it cannot read. For a file the store accepts
    the job engine's read of the stored file, :meth:`SeriesFacts.from_header` and every route
    must work: an exception there would fail, at every retry, the stability sweep that routes
    the file's series (and every series completed in the same sweep).
    """
    raw = store.root.parent / "fuzz-raw.dcm"
    raw.write_bytes(case.data)
    result = scan(raw, calling_ae="FUZZ")
    render_table(evaluate(result.series, routes()), skipped=len(result.skipped))
    outcome, path = _ingest(store, case)
    if path is None:
        return "refused-" + outcome
    if not result.series:
        raise ContractViolation(f"scan skipped a file the store accepts: {result.skipped}")
    read = read_instance(path)  # the job engine's read of a completed series' header
    if isinstance(read, str):
        raise ContractViolation(f"the store accepted a file the job engine skips: {read}")
    return "stored/" + check_routing_header(read.dataset)


def digest(data: bytes) -> str:
    """Short name of an input (for crash files)."""
    return hashlib.sha256(data).hexdigest()[:16]
