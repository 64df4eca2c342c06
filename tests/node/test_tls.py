"""DICOM TLS (PS3.15 B.12) on the listener: TLS 1.2+, mutual authentication, no blocking peers.

The cases on the default handshake timeout share one TLS node; each checks what the node stored
and recorded while it ran (:class:`testkit.since.Since`).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from testkit import dicomgen
from testkit.hostile import is_open, open_idle
from testkit.nodeproc import DCMTK_ENV, STORESCU, NodeProcess, echo
from testkit.pki import Pki, make_pki
from testkit.since import Since


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _client_context(pki: Pki, *, cert: Path | None) -> ssl.SSLContext:
    return pki.client_context(cert=cert)


def _tls_node(node_factory, pki: Pki, **node: object) -> NodeProcess:
    proc = node_factory(node={"tls": pki.server_config(), **node})
    proc.tls = (_client_context(pki, cert=pki.client_pem), "localhost")
    return proc.start()


@pytest.fixture(scope="module")
def shared_tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """The TLS node of the cases that need no other setting."""
    node = NodeProcess(
        tmp_path_factory.mktemp("tls") / "node", {"node": {"tls": pki.server_config()}}
    )
    node.tls = (_client_context(pki, cert=pki.client_pem), "localhost")
    try:
        yield node.start()
    finally:
        node.kill()


@pytest.fixture
def tls_node(shared_tls: NodeProcess) -> Since:
    """The shared TLS node, as one case sees it: what it gains from now on."""
    return Since(shared_tls)


def _store(
    node: NodeProcess | Since, context: ssl.SSLContext, ae_title: str, count: int = 3
) -> bool:
    """Store a small series over TLS; True when every instance got Success."""
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 10
    assoc = ae.associate(
        "127.0.0.1", node.port, ae_title="DICOMNODE", tls_args=(context, "localhost")
    )
    if not assoc.is_established:
        return False
    spec = dicomgen.study(ae_title.lower(), [count])[0]
    statuses = [assoc.send_c_store(ds).Status for ds in dicomgen.series(spec)]
    assoc.release()
    return statuses == [0] * count


def _alerts(node: Since, expect: int) -> list[str]:
    return [detail for _, detail in node.audit("security.alert", expect=expect)]


def test_mutually_authenticated_peers_store(tls_node, pki, tmp_path):
    node = tls_node
    assert _store(node, _client_context(pki, cert=pki.client_pem), "TLSSCU")
    # dcmtk as the sender, with its default BCP 195 profile.
    spec = dicomgen.study("dcmtk-tls", [4])[0]
    files = dicomgen.write_series(spec, tmp_path / "dcmtk")
    result = subprocess.run(
        [STORESCU, "-v", "+tls", str(pki.client_key), str(pki.client_chain)]
        + ["+cf", str(pki.ca_file), "-aec", "DICOMNODE", "127.0.0.1", str(node.port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        env=DCMTK_ENV,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).count("Received Store Response (Success)") == 4
    assert node.count("instances") == 7
    assert _alerts(node, 0) == []
    assert "ok    tls: cert" in node.node.cli("check").stdout


def test_missing_or_untrusted_client_certificate_is_refused(tls_node, pki):
    node = tls_node
    assert not _store(node, _client_context(pki, cert=None), "NOCERT")
    stranger = trustme.CA().issue_cert("stranger.example.org")
    stranger_pem = pki.ca_file.parent / "stranger.pem"
    stranger.private_key_and_cert_chain_pem.write_to_path(str(stranger_pem))
    assert not _store(node, _client_context(pki, cert=stranger_pem), "STRANGER")
    assert node.count("instances") == 0
    alerts = _alerts(node, 2)
    assert len(alerts) == 2
    assert all(a.startswith("TLS handshake refused") for a in alerts), alerts
    assert "CERTIFICATE" in alerts[0].upper() and "CERTIFICATE" in alerts[1].upper()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_before_1_2_is_refused(tls_node, pki, version):
    node = tls_node
    context = _client_context(pki, cert=pki.client_pem)
    context.minimum_version = context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer the old protocol
    with (
        socket.create_connection(("127.0.0.1", node.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="localhost")
    # The node refused it (not the client's own library): it recorded why.
    (alert,) = _alerts(node, 1)
    assert alert.startswith("TLS handshake refused") and "PROTOCOL" in alert.upper(), alert


def test_plain_dicom_to_the_tls_port_is_refused(tls_node):
    node = tls_node
    assert not echo(node.port)
    (alert,) = _alerts(node, 1)
    assert alert.startswith("TLS handshake refused")


def test_peers_that_never_handshake_do_not_block_a_tls_store(node_factory, pki):
    # A long handshake timeout: the store must succeed while the silent peers are connected.
    node = _tls_node(node_factory, pki, handshake_timeout=60)
    silent = open_idle(node.port, 20)
    try:
        assert _store(node, _client_context(pki, cert=pki.client_pem), "AFTERSILENT")
        assert all(is_open(sock) for sock in silent)
    finally:
        for sock in silent:
            sock.close()


def test_unreadable_certificate_is_a_one_line_error(tmp_path, pki):
    node = NodeProcess(
        tmp_path / "bad",
        {
            "node": {
                "tls": {
                    "cert": str(tmp_path / "missing.pem"),
                    "key": str(pki.server_key),
                    "ca": str(pki.ca_file),
                }
            }
        },
    )
    with pytest.raises(RuntimeError) as failed:
        node.start(timeout=20)
    assert "node.tls.cert" in str(failed.value)
    assert "missing.pem" in str(failed.value)
    assert "Traceback" not in node.log_text()
    checked = node.cli("check")
    assert checked.returncode != 0
    (line,) = [line for line in checked.stdout.splitlines() if line.startswith("FAIL  tls")]
    assert "missing.pem" in line
