"""The store's fast header reader gives what pydicom gives, on every file tried.

``read_header`` reads the common case with :func:`dicomnode.store.prefix.read_prefix` and
everything else with pydicom. Each file here is read both ways (the second with the fast
reader switched off): the same header, or the same refusal (status and reason).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from pydicom.data import get_testdata_files

from dicomnode.errors import StoreRejected
from dicomnode.store import inspect
from dicomnode.store.inspect import ReceivedHeader, read_header
from dicomnode.store.prefix import read_prefix
from testkit import dicomgen, malformed
from testkit.fuzzing import profile
from testkit.mutate import Case, file_meta, routing_cases, seeds, store_cases

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on odd files

Outcome = ReceivedHeader | tuple[int, str]


def _outcome(path: Path) -> Outcome:
    try:
        return read_header(path)
    except StoreRejected as exc:
        return exc.status, exc.reason


def _fast(path: Path) -> bool:
    with open(path, "rb") as fh:
        return read_prefix(fh, path.stat().st_size) is not None


def _compare(path: Path, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Assert both readers agree on ``path``; whether the fast one read it."""
    fast = _fast(path)
    first = _outcome(path)
    with monkeypatch.context() as patched:
        patched.setattr(inspect, "read_prefix", lambda fh, size: None)
        second = _outcome(path)
    assert first == second, path.name
    return fast


def _write(tmp_path: Path, data: bytes, name: str = "case.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_pydicom_test_files_read_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [path for path in map(Path, get_testdata_files()) if path.is_file()]
    fast = [path.name for path in files if _compare(path, monkeypatch)]
    stored = sum(isinstance(_outcome(path), ReceivedHeader) for path in files)
    assert len(files) > 100 and stored > 50
    assert len(fast) > 10, fast  # the fast reader takes a good share of real files...
    assert len(fast) < stored  # ...and hands pydicom the others


def test_malformed_corpus_reads_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = 0
    for entry in malformed.corpus():
        meta = file_meta(
            entry.transfer_syntax.encode(),
            entry.sop_class_uid.encode(),
            entry.sop_instance_uid.encode(),
        )
        path = _write(tmp_path, meta + entry.data, f"{entry.name}.dcm")
        _compare(path, monkeypatch)
        refused += not isinstance(_outcome(path), ReceivedHeader)
    assert refused > 10


def test_seeds_and_generated_series_read_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = dicomgen.SeriesSpec("1.2.3", "1.2.3.4", 3, rows=32, columns=32)
    generated = [dicomgen.instance(spec, index) for index in range(3)]
    for index, ds in enumerate(generated):
        path = tmp_path / f"gen{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        assert _compare(path, monkeypatch)
        header = read_header(path)
        assert header == ReceivedHeader(
            sop_class_uid=ds.SOPClassUID,
            sop_instance_uid=ds.SOPInstanceUID,
            study_uid="1.2.3",
            series_uid="1.2.3.4",
            transfer_syntax_uid=ds.file_meta.TransferSyntaxUID,
            modality=ds.Modality,
            series_number=header.series_number,
            series_description=ds.get("SeriesDescription") or None,
        )
    fast = {seed.name: _compare(_write(tmp_path, seed.data), monkeypatch) for seed in seeds()}
    assert fast["explicit"] and fast["rle"]
    assert not fast["implicit"] and not fast["big-endian"] and not fast["sequences"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"IS\x02\x007 ", b"IS\x02\x00\x007"),  # a leading NUL: pydicom's int() refuses it
        (b"IS\x02\x007 ", b"IS\x02\x00+7"),
        (b"IS\x02\x007 ", b"IS\x02\x00  "),
        (b"IS\x02\x007 ", b"IS\x02\x001_"),
        (b"CS\x02\x00CT", b"CS\x02\x00C\\"),
        (b"CS\x02\x00CT", b"CS\x02\x00\xc3\x89"),
        (b"CS\x02\x00CT", b"CS\x02\x00 \x00"),
        (b"CS\x02\x00CT", b"LO\x02\x00CT"),
    ],
)
def test_odd_values_read_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: bytes, new: bytes
) -> None:
    spec = dicomgen.SeriesSpec("1.2.3", "1.2.3.4", 1, rows=8, columns=8)
    ds = dicomgen.instance(spec, 0)
    ds.SeriesNumber, ds.Modality = 7, "CT"
    path = tmp_path / "odd.dcm"
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    _compare(path, monkeypatch)


def test_damaged_files_read_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = {"fast": 0, "all": 0}

    @profile()
    @given(store_cases())
    def structure(case: Case) -> None:
        counts["fast"] += _compare(_write(tmp_path, case.data), monkeypatch)
        counts["all"] += 1

    @profile()
    @given(routing_cases())
    def values(case: Case) -> None:
        counts["fast"] += _compare(_write(tmp_path, case.data), monkeypatch)
        counts["all"] += 1

    structure()
    values()
    assert 0 < counts["fast"] < counts["all"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"\x02\x00\x10\x00UI", b"\x02\x00\x10\x00SH"),  # another VR
        (b"1.2.840.10008.1.2.1\x00", b" 1.2.840.10008.1.2.1"),  # a leading space
        (b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2\x00\x00"),  # implicit VR declared
    ],
)
def test_odd_transfer_syntax_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: bytes, new: bytes
) -> None:
    seed = seeds()[0]
    assert seed.data.count(old) == 1
    assert not _compare(_write(tmp_path, seed.data.replace(old, new)), monkeypatch)
