"""C-STORE export over DICOM TLS: to a peer that requires client certificates (a TLS node)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomnode.config.loader import parse_config
from dicomnode.config.schema import ClientTlsConfig, DicomDestination
from dicomnode.export.senders import DicomSender, echo
from dicomnode.export.status import Verdict
from testkit import dicomgen
from testkit.nodeproc import NodeProcess
from testkit.pki import Pki, make_pki
from tests.export.peers import StatusSCP


@pytest.fixture
def tls_peer(node_factory, tmp_path: Path) -> tuple[NodeProcess, Pki]:
    pki = make_pki(tmp_path / "pki")
    peer = node_factory("peer", node={"tls": pki.server_config()})
    peer.tls = (pki.client_context(cert=pki.client_pem), "localhost")
    return peer.start(), pki


def _destination(peer: NodeProcess, tls: ClientTlsConfig | None) -> DicomDestination:
    return DicomDestination(ae_title="DICOMNODE", host="127.0.0.1", port=peer.port, tls=tls)


def test_results_go_to_a_tls_peer_with_our_certificate(tls_peer, tmp_path):
    peer, pki = tls_peer
    tls = ClientTlsConfig(ca=pki.ca_file, cert=pki.client_chain, key=pki.client_key)
    files = dicomgen.write_series(dicomgen.study("tlsout", [3])[0], tmp_path / "out")
    attempts = DicomSender(_destination(peer, tls), "EXPORTER", timeout=10).send(files)
    assert [(a.verdict, a.status) for a in attempts] == [(Verdict.DELIVERED, 0)] * 3
    assert peer.query("select count(*) from instances") == [(3,)]
    assert echo(_destination(peer, tls), calling_ae="EXPORTER") is None


def test_without_certificate_or_with_another_ca_nothing_is_sent(tls_peer, tmp_path):
    peer, pki = tls_peer
    files = dicomgen.write_series(dicomgen.study("tlsno", [2])[0], tmp_path / "out")
    no_cert = ClientTlsConfig(ca=pki.ca_file)
    other_ca = make_pki(tmp_path / "other")
    wrong_ca = ClientTlsConfig(ca=other_ca.ca_file, cert=pki.client_chain, key=pki.client_key)
    plain = None
    for tls in (no_cert, wrong_ca, plain):
        attempts = DicomSender(_destination(peer, tls), "EXPORTER", timeout=10).send(files)
        assert {a.verdict for a in attempts} == {Verdict.RETRY}, tls
        assert echo(_destination(peer, tls), calling_ae="EXPORTER") is not None
    assert peer.query("select count(*) from instances") == [(0,)]


def test_a_missing_ca_file_is_a_retry_with_a_one_line_reason(tmp_path):
    dest = DicomDestination(
        ae_title="PACS", host="127.0.0.1", port=1, tls=ClientTlsConfig(ca=tmp_path / "nope.pem")
    )
    files = dicomgen.write_series(dicomgen.study("noca", [1])[0], tmp_path / "out")
    (attempt,) = DicomSender(dest, "EXPORTER", timeout=2).send(files)
    assert attempt.verdict is Verdict.RETRY and "nope.pem" in attempt.detail
    problem = echo(dest, calling_ae="EXPORTER")
    assert problem is not None and "nope.pem" in problem and "\n" not in problem


def test_relative_tls_paths_are_relative_to_the_config_file(tmp_path):
    config = parse_config(
        {
            "node": {"tls": {"cert": "n.pem", "key": "n.key", "ca": "ca.pem"}},
            "destinations": {
                "pacs": {
                    "ae_title": "PACS",
                    "host": "pacs.example",
                    "port": 104,
                    "tls": {"ca": "pacs-ca.pem", "cert": "c.pem", "key": "c.key"},
                }
            },
        },
        base=tmp_path,
    )
    assert config.node.tls is not None and config.node.tls.ca == tmp_path / "ca.pem"
    pacs = config.destinations["pacs"]
    assert isinstance(pacs, DicomDestination) and pacs.tls is not None
    assert (pacs.tls.ca, pacs.tls.key) == (tmp_path / "pacs-ca.pem", tmp_path / "c.key")


def test_an_unreadable_result_file_fails_only_its_own_delivery(tmp_path):
    scp = StatusSCP(0x0000).start()
    try:
        dest = DicomDestination(ae_title="PACS", host="127.0.0.1", port=scp.port)
        files = dicomgen.write_series(dicomgen.study("onebad", [2])[0], tmp_path / "out")
        missing = tmp_path / "out" / "gone.dcm"
        attempts = DicomSender(dest, "EXPORTER", timeout=5).send([files[0], missing, files[1]])
        assert [a.verdict for a in attempts] == [Verdict.DELIVERED, Verdict.DEAD, Verdict.DELIVERED]
        assert "cannot read result file" in attempts[1].detail
        assert len(scp.received) == 2
    finally:
        scp.stop()
