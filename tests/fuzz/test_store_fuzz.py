"""Malformed files through the store handler: a result or a failure status, nothing partial.

Bounded (250 derandomized inputs per property, the ``fuzz-ci`` profile); ``bench/fuzz.py``
runs the same properties for much longer.
"""

from __future__ import annotations

from collections import Counter
from io import BytesIO

from hypothesis import given

from dicomnode.store.ingest import Store, StoreOutcome
from testkit import dicomgen
from testkit.fuzzing import check_store, profile
from testkit.mutate import Case, seeds, store_cases


def test_damaged_files_get_a_result_or_a_failure_status(fuzz_store: Store) -> None:
    outcomes: Counter[str] = Counter()

    @profile()
    @given(store_cases())
    def one(case: Case) -> None:
        outcomes[check_store(fuzz_store, case)] += 1

    one()
    assert outcomes["0xC000"] > 0  # the strategy does reach the refusals...
    assert outcomes["stored"] + outcomes["duplicate"] + outcomes["superseded"] > 0  # ...and past


def test_seeds_are_stored_whole(fuzz_store: Store) -> None:
    for seed in seeds():
        case = Case(seed.data, seed.sop_class_uid, seed.sop_instance_uid, (seed.name,))
        assert check_store(fuzz_store, case) == "stored", seed.name


def _with_series_number(raw: bytes) -> Case:
    spec = dicomgen.SeriesSpec("1.2.3", "1.2.3.4", 1, rows=8, columns=8)
    ds = dicomgen.instance(spec, 0)
    ds.SeriesNumber = 7
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    old = b"\x20\x00\x11\x00IS\x02\x007 "
    new = b"\x20\x00\x11\x00IS" + len(raw).to_bytes(2, "little") + raw
    data = buffer.getvalue().replace(old, new)
    return Case(data, str(ds.SOPClassUID), str(ds.SOPInstanceUID), ("series-number",))


def test_series_number_outside_the_is_range_is_dropped_not_fatal(fuzz_store: Store) -> None:
    # Found by the fuzzer: thirty digits overflowed SQLite's INTEGER and escaped ingest as an
    # OverflowError (on PostgreSQL a 32-bit overflow became 0xA700, "try again later");
    # "1e400" was refused as unparseable. The value is dropped, the instance stored.
    for raw in (b"1" * 30, b"1e400 ", b"inf ", b"-99999999999 "):
        assert check_store(fuzz_store, _with_series_number(raw)) in {"stored", "superseded"}


def test_resent_instance_with_an_undecodable_value_is_compared_without_escaping(
    fuzz_store: Store,
) -> None:
    # Found by the fuzzer: a re-sent instance (other bytes: here the preamble) is compared
    # with the stored one element by element, decoding values the header check never reads;
    # an undecodable one (unknown VR; or RecursionError through deeply nested sequences)
    # escaped ingest. Now the two count as different: superseded.
    seed = seeds()[0]
    birth = b"\x10\x00\x30\x00DA"
    assert birth in seed.data
    data = seed.data.replace(birth, b"\x10\x00\x30\x00ZZ")
    first = Case(data, seed.sop_class_uid, seed.sop_instance_uid, ("vr",))
    again = Case(b"\x01" + data[1:], seed.sop_class_uid, seed.sop_instance_uid, ("vr",))
    assert check_store(fuzz_store, first) == StoreOutcome.STORED.value
    assert check_store(fuzz_store, again) == StoreOutcome.SUPERSEDED.value


def test_file_cut_inside_an_element_header_is_refused(fuzz_store: Store) -> None:
    # Found by the malformed corpus: pydicom stops quietly at 1-7 trailing bytes, so a data
    # set cut inside the pixel data's element header was stored with Success.
    seed = seeds()[0]
    pixels = seed.data.index(b"\xe0\x7f\x10\x00")
    for cut in (2, 6):
        case = Case(seed.data[: pixels + cut], seed.sop_class_uid, seed.sop_instance_uid, ())
        assert check_store(fuzz_store, case) == "0xC000"
