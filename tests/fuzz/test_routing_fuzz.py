"""Damaged headers through routing: facts and every kind of route; nothing may escape.

Routing reads header values lazily, when a route asks for them; a value the store accepted but
pydicom cannot decode must fail the route, not the stability sweep that evaluates it.
"""

from __future__ import annotations

from collections import Counter
from io import BytesIO

from hypothesis import given
from pydicom import Dataset, dcmread

from dicomnode.routing import compile_routes, scan
from dicomnode.routing.facts import SeriesFacts
from dicomnode.store.ingest import Store
from testkit import dicomgen
from testkit.fuzzing import check_routing_file, check_routing_header, headers, profile
from testkit.mutate import Case, nested_sequence, routing_cases


def test_damaged_values_in_stored_files_fail_routes_not_the_sweep(fuzz_store: Store) -> None:
    outcomes: Counter[str] = Counter()

    @profile()
    @given(routing_cases())
    def one(case: Case) -> None:
        outcomes[check_routing_file(fuzz_store, case).split("/")[0]] += 1

    one()
    assert outcomes["stored"] > 0 and sum(outcomes.values()) > outcomes["stored"]


def test_any_raw_value_of_a_routed_attribute(fuzz_store: Store) -> None:
    outcomes: Counter[str] = Counter()

    @profile()
    @given(headers())
    def one(header: Dataset) -> None:
        outcomes[check_routing_header(header)] += 1

    one()
    assert len(outcomes) > 1


def _odd_rows(tmp_path) -> bytes:
    spec = dicomgen.SeriesSpec("1.2.3", "1.2.3.4", 1, rows=8, columns=8)
    buffer = BytesIO()
    dicomgen.instance(spec, 0).save_as(buffer, enforce_file_format=True)
    old = b"\x28\x00\x10\x00US\x02\x00\x08\x00"
    return buffer.getvalue().replace(old, b"\x28\x00\x10\x00US\x03\x00\x08\x00\x00")


def test_undecodable_value_fails_the_route_instead_of_raising(tmp_path) -> None:
    # Found by the fuzzer: Rows with 3 bytes (US needs a multiple of 2) passes the store, and
    # route.match raised BytesLengthException, failing every stability sweep from then on.
    header = dcmread(BytesIO(_odd_rows(tmp_path)), stop_before_pixels=True)
    facts = SeriesFacts.from_header(header, instances=1)
    spec = {"name": "r", "pipeline": "p", "send_to": ["x"], "when": {"Rows": {"max": 512}}}
    match = compile_routes([spec])[0].match(facts)
    assert not match.matched and match.reason == "Rows: absent (expected <= 512)"


def test_scan_skips_unreadable_files_and_keeps_undecodable_instance_numbers(tmp_path) -> None:
    # Found by the fuzzer: route explain's scan let RecursionError (deep sequences) and
    # NotImplementedError (unknown VR of Modality) escape, and skipped a file whose
    # InstanceNumber had a wrong VR although the node stores and routes it.
    data = _odd_rows(tmp_path)
    (tmp_path / "a-rows.dcm").write_bytes(data)
    number = data.replace(b"\x20\x00\x13\x00IS", b"\x20\x00\x13\x00FD")
    (tmp_path / "b-number.dcm").write_bytes(number)
    (tmp_path / "c-vr.dcm").write_bytes(data.replace(b"\x08\x00\x60\x00CS", b"\x08\x00\x60\x00ZZ"))
    at = data.index(b"\x08\x00\x60\x00CS")
    (tmp_path / "d-deep.dcm").write_bytes(data[:at] + nested_sequence(5000) + data[at:])
    result = scan(tmp_path)
    assert [(s.path.name, s.reason) for s in result.skipped] == [
        ("d-deep.dcm", "unreadable: RecursionError")
    ]
    (series,) = result.series
    assert series.instances == 1 and series.modality in {"", "CT"}
