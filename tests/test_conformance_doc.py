"""docs/conformance.md lists exactly the SOP classes and transfer syntaxes the code registers.

The SCP side comes from the node's real AE (:class:`dicomnode.net.scp.StorageSCP`); the SCU
side from what :mod:`dicomnode.export.senders` proposes when it sends the objects that
:func:`dicomnode.results.encode` really creates, and when it probes a destination with C-ECHO.
Tables are found by their marker line (see ``scripts/conformance_tables.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.uid import UID, UID_dictionary
from pynetdicom import AE
from pynetdicom.presentation import PresentationContext
from sqlalchemy import create_engine

from dicomnode.config.schema import DicomDestination, NodeConfig, SourceConfig
from dicomnode.errors import QueryFailed
from dicomnode.export import senders
from dicomnode.net import peer, query, retrieve
from dicomnode.net.scp import SIGNAL_SOP_CLASSES, StorageSCP
from dicomnode.results import (
    Algorithm,
    Findings,
    Mask,
    RegionFinding,
    encode,
    geometry_from_datasets,
)
from dicomnode.store.db import Database
from dicomnode.store.ingest import Store
from tests.results.sources import volume_series

DOC = Path(__file__).resolve().parents[1] / "docs" / "conformance.md"
VERIFICATION = "1.2.840.10008.1.1"
_MARKER = re.compile(r"^<!-- conformance-table: ([a-z-]+) -->$")
_UID_SPAN = re.compile(r"`([0-9]+(?:\.[0-9]+)+)`")


def _tables(text: str) -> dict[str, list[str]]:
    """The UIDs (one per row, in order) of every marked table of the document."""
    tables: dict[str, list[str]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _MARKER.match(line.strip())
        if not match:
            continue
        rows = _table_after(lines, i + 1)
        uids = []
        for row in rows[2:]:  # header and separator
            found = _UID_SPAN.findall(row)
            assert len(found) == 1, f"table {match[1]}: expected one UID in {row!r}"
            uids.append(found[0])
        assert match[1] not in tables, f"table {match[1]} appears twice"
        tables[match[1]] = uids
    return tables


def _table_after(lines: list[str], start: int) -> list[str]:
    rows: list[str] = []
    for line in lines[start:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows or line.strip():
            break
    return rows


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tables(doc: str) -> dict[str, list[str]]:
    return _tables(doc)


@pytest.fixture(scope="module")
def scp_ae(tmp_path_factory: pytest.TempPathFactory) -> AE:
    """The AE of a node on the default config (built, not started)."""
    root = tmp_path_factory.mktemp("store")
    store = Store(root, Database(create_engine("sqlite://")), min_free=0)
    return StorageSCP(NodeConfig(), store).ae


@pytest.fixture(scope="module")
def scp_contexts(scp_ae: AE) -> list[PresentationContext]:
    return list(scp_ae.supported_contexts)


class _RecordingAE(AE):
    """An AE that records the contexts it would propose and never connects."""

    proposed: list[list[PresentationContext]] = []

    def associate(self, *args: Any, **kwargs: Any) -> Any:
        _RecordingAE.proposed.append(list(self.requested_contexts))
        return _NoAssociation()


class _NoAssociation:
    is_established = False
    is_rejected = True


@pytest.fixture(scope="module")
def scu_contexts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Any]]]:
    """The contexts the export proposes: sending real results, and probing with C-ECHO."""
    out = tmp_path_factory.mktemp("results")
    files = []
    for ds in _results():
        files.append(out / f"{ds.SOPInstanceUID}.dcm")
        ds.save_as(files[-1], enforce_file_format=True)
    destination = DicomDestination(ae_title="PACS", host="127.0.0.1", port=104)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(senders, "AE", _RecordingAE)
        mp.setattr(peer, "AE", _RecordingAE)
        _RecordingAE.proposed = []
        attempts = senders.DicomSender(destination, "DICOMNODE", timeout=1).send(files)
        assert [a.detail for a in attempts] == ["association rejected"] * len(files)
        store_contexts = _RecordingAE.proposed.pop()
        assert senders.echo(destination, calling_ae="DICOMNODE") == "association rejected"
        echo_contexts = _RecordingAE.proposed.pop()
    yield {"store": store_contexts, "echo": echo_contexts}


def _results() -> list[Any]:
    """SEG, SR and summary image from a tiny CT, as a pipeline run makes them."""
    ct = volume_series(slices=4, rows=16, columns=16)
    geo = geometry_from_datasets(ct)
    mask = np.zeros(geo.shape, bool)
    mask[1, 4:8, 4:8] = True
    centre = geo.index_to_patient(1, 6, 6)
    findings = Findings(
        kinds=("lung_nodule",),
        regions=(RegionFinding.sphere("lung_nodule", centre, 3.0, score=0.8),),
        masks=(Mask("lung_nodule", mask, geo),),
    )
    results = encode(findings, ct, algorithm=Algorithm("lung_nodule", "1.0.0"))
    assert [ds.Modality for ds in results] == ["SEG", "SR", "OT"]
    return results


def _one_list(contexts: list[PresentationContext]) -> list[str]:
    """The transfer syntaxes of ``contexts``, which must all have the same list."""
    lists = {tuple(str(ts) for ts in cx.transfer_syntax) for cx in contexts}
    assert len(lists) == 1, f"contexts with different transfer syntaxes: {lists}"
    return list(lists.pop())


def test_every_table_is_present_once(tables: dict[str, list[str]]) -> None:
    assert set(tables) == {
        "scp-verification-sop-class",
        "scp-verification-transfer-syntaxes",
        "scp-storage-sop-classes",
        "scp-storage-transfer-syntaxes",
        "scp-signal-sop-classes",
        "scp-signal-transfer-syntaxes",
        "scu-verification-sop-class",
        "scu-verification-transfer-syntaxes",
        "scu-storage-sop-classes",
        "scu-storage-transfer-syntaxes",
        "scu-find-sop-class",
        "scu-find-transfer-syntaxes",
        "scu-retrieve-sop-classes",
        "scu-get-storage-transfer-syntaxes",
    }
    for name, uids in tables.items():
        assert uids, f"table {name} is empty"
        assert len(uids) == len(set(uids)), f"table {name} lists a UID twice"


def test_scp_sop_classes_and_transfer_syntaxes(
    tables: dict[str, list[str]], scp_contexts: list[PresentationContext]
) -> None:
    verification = [cx for cx in scp_contexts if cx.abstract_syntax == VERIFICATION]
    signals = [cx for cx in scp_contexts if cx.abstract_syntax in SIGNAL_SOP_CLASSES]
    storage = [
        cx for cx in scp_contexts if cx.abstract_syntax != VERIFICATION and cx not in signals
    ]
    assert tables["scp-verification-sop-class"] == [VERIFICATION]
    assert set(tables["scp-storage-sop-classes"]) == {str(cx.abstract_syntax) for cx in storage}
    assert tables["scp-signal-sop-classes"] == [str(cx.abstract_syntax) for cx in signals]
    # The order is the node's order of preference: the document must keep it.
    assert tables["scp-verification-transfer-syntaxes"] == _one_list(verification)
    assert tables["scp-storage-transfer-syntaxes"] == _one_list(storage)
    assert tables["scp-signal-transfer-syntaxes"] == _one_list(signals)


def test_deflated_is_refused_for_storage(tables: dict[str, list[str]], doc: str) -> None:
    for uid in tables["scp-storage-transfer-syntaxes"]:
        assert not UID(uid).is_deflated and "deflate" not in UID(uid).name.lower()
    assert "Deflated transfer syntaxes are refused for Storage" in doc


def test_scu_sop_classes_and_transfer_syntaxes(
    tables: dict[str, list[str]], scu_contexts: dict[str, list[PresentationContext]]
) -> None:
    store, echo = scu_contexts["store"], scu_contexts["echo"]
    assert set(tables["scu-storage-sop-classes"]) == {str(cx.abstract_syntax) for cx in store}
    assert tables["scu-storage-transfer-syntaxes"] == _one_list(store)
    assert tables["scu-verification-sop-class"] == [str(cx.abstract_syntax) for cx in echo]
    assert tables["scu-verification-transfer-syntaxes"] == _one_list(echo)
    # The overview says the node also accepts what it sends.
    assert set(tables["scu-storage-sop-classes"]) <= set(tables["scp-storage-sop-classes"])


def test_query_scu_sop_class_and_transfer_syntaxes(tables: dict[str, list[str]]) -> None:
    """What :func:`dicomnode.net.query.find_series` really proposes."""
    source = SourceConfig(ae_title="PACS", host="127.0.0.1", port=104)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(query, "AE", _RecordingAE)
        _RecordingAE.proposed = []
        with pytest.raises(QueryFailed, match="association rejected"):
            query.find_series(source, "1.2.3", calling_ae="DICOMNODE", timeout=1)
        (contexts,) = _RecordingAE.proposed
    assert tables["scu-find-sop-class"] == [str(cx.abstract_syntax) for cx in contexts]
    assert tables["scu-find-transfer-syntaxes"] == _one_list(contexts)


def test_retrieve_scu_sop_classes_and_transfer_syntaxes(tables: dict[str, list[str]]) -> None:
    """What :class:`dicomnode.net.retrieve.Retrieval` really proposes for C-MOVE and C-GET."""
    source = SourceConfig(ae_title="PACS", host="127.0.0.1", port=104)
    retrieval = retrieve.Retrieval(calling_ae="DICOMNODE")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(retrieve, "AE", _RecordingAE)
        _RecordingAE.proposed = []
        with pytest.raises(QueryFailed, match="association rejected"):
            retrieval.move(source, "1.2.3", "1.2.3.4", destination="DICOMNODE", timeout=1)
        with pytest.raises(QueryFailed, match="association rejected"):
            retrieval.get(source, "1.2.3", "1.2.3.4", store=None, timeout=1)  # type: ignore[arg-type]
        (move,), (get, *storage) = _RecordingAE.proposed
    assert tables["scu-retrieve-sop-classes"] == [
        str(move.abstract_syntax),
        str(get.abstract_syntax),
    ]
    assert _one_list([move, get]) == tables["scu-find-transfer-syntaxes"]
    assert _one_list(storage) == tables["scu-get-storage-transfer-syntaxes"]
    assert {str(cx.abstract_syntax) for cx in storage} <= set(tables["scp-storage-sop-classes"])
    assert [cx.abstract_syntax for cx in storage] == retrieve.GET_STORAGE_SOP_CLASSES


def test_no_other_sop_class_or_transfer_syntax_is_named(
    doc: str, tables: dict[str, list[str]]
) -> None:
    """A SOP class or transfer syntax UID anywhere in the text must be one the code registers."""
    registered = {uid for uids in tables.values() for uid in uids}
    for uid in set(_UID_SPAN.findall(doc)):
        kind = UID_dictionary.get(uid, ("", ""))[1]
        if kind in ("SOP Class", "Transfer Syntax"):
            assert uid in registered, f"{uid} ({UID(uid).name}) is named but not registered"


def test_implementation_identification(doc: str, scp_ae: AE) -> None:
    # The export AEs are plain pynetdicom AEs: the same values as the SCP's.
    for ae in (scp_ae, AE()):
        assert f"| Implementation Class UID | `{ae.implementation_class_uid}` |" in doc
        assert f"| Implementation Version Name | `{ae.implementation_version_name}` |" in doc


def test_maximum_pdu_is_the_default_config(doc: str, scp_ae: AE) -> None:
    assert scp_ae.maximum_pdu_size == NodeConfig().max_pdu
    assert f"`node.max_pdu`, default {NodeConfig().max_pdu} bytes" in doc
    assert f"offers is pynetdicom's default, {AE().maximum_pdu_size} bytes" in doc
