"""The listener's TLS context (DICOM TLS, PS3.15 B.12): TLS 1.2+, mutual authentication."""

from __future__ import annotations

import ssl
from pathlib import Path

from dicomnode.config.schema import ClientTlsConfig, TlsConfig
from dicomnode.errors import ConfigError

__all__ = ["client_context", "server_context"]


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """Build the server-side context: TLS 1.2 minimum, a client certificate from ``tls.ca``.

    Raises
    ------
    ConfigError
        One line naming the file that cannot be loaded (missing, unreadable, not PEM, key and
        certificate that don't match).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.options |= ssl.OP_NO_COMPRESSION
    _load_cert_chain(context, tls.cert, tls.key, key="node.tls.cert")
    try:
        context.load_verify_locations(cafile=tls.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA {tls.ca}: {_reason(exc)}", key="node.tls.ca") from None
    return context


def client_context(tls: ClientTlsConfig) -> ssl.SSLContext:
    """Build the context of an association to a destination: TLS 1.2 minimum, the peer's
    certificate verified against ``tls.ca`` (and its host name), ours sent when configured.

    Raises
    ------
    ConfigError
        One line naming the file that cannot be loaded.
    """
    try:
        context = ssl.create_default_context(cafile=str(tls.ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load CA {tls.ca}: {_reason(exc)}", key="tls.ca") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert is not None:
        _load_cert_chain(context, tls.cert, tls.key, key="tls.cert")
    return context


def _load_cert_chain(
    context: ssl.SSLContext, cert: Path, private_key: Path | None, *, key: str
) -> None:
    """Load our certificate chain; a ConfigError naming both files and ``key`` if it fails."""
    try:
        context.load_cert_chain(cert, private_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load cert {cert} with key {private_key}: {_reason(exc)}", key=key
        ) from None


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return exc.strerror or str(exc)
