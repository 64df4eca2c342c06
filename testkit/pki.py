"""A throwaway PKI for TLS tests and benchmarks (trustme): a CA, a server and a client."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["Pki", "make_pki"]


@dataclass
class Pki:
    """A test CA, the server's certificate for localhost/127.0.0.1 and a client's, as PEM files."""

    ca: trustme.CA
    ca_file: Path
    server_chain: Path
    server_key: Path
    client_pem: Path  # key and certificate chain in one file
    client_key: Path
    client_chain: Path

    def client_context(self, *, cert: Path | None) -> ssl.SSLContext:
        """A client context trusting the CA, presenting ``cert`` (key + chain) if given."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            context.load_cert_chain(str(cert))
        return context

    def server_config(self) -> dict[str, str]:
        """The node's ``node.tls`` section for this PKI."""
        return {
            "cert": str(self.server_chain),
            "key": str(self.server_key),
            "ca": str(self.ca_file),
        }


def make_pki(directory: Path) -> Pki:
    """Issue the certificates into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("modality.example.org")
    pki = Pki(
        ca=ca,
        ca_file=directory / "ca.pem",
        server_chain=directory / "server.pem",
        server_key=directory / "server.key",
        client_pem=directory / "client-both.pem",
        client_key=directory / "client.key",
        client_chain=directory / "client.pem",
    )
    ca.cert_pem.write_to_path(str(pki.ca_file))
    server.private_key_pem.write_to_path(str(pki.server_key))
    for i, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(pki.server_chain), append=i > 0)
    client.private_key_and_cert_chain_pem.write_to_path(str(pki.client_pem))
    client.private_key_pem.write_to_path(str(pki.client_key))
    for i, blob in enumerate(client.cert_chain_pems):
        blob.write_to_path(str(pki.client_chain), append=i > 0)
    return pki
