"""Senders: C-STORE SCU (pynetdicom) and STOW-RS (dicomweb-client), one batch at a time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from dicomnode.config.schema import DicomDestination, StowDestination
from dicomnode.errors import ConfigError
from dicomnode.export.status import Verdict, classify_dimse, classify_http
from dicomnode.net.peer import echo, keep_responses, no_delay, tls_args

__all__ = ["Attempt", "DicomSender", "Sender", "StowSender", "echo", "no_delay", "sender_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """Outcome of sending one file: the verdict, the status seen, and a one-line reason."""

    verdict: Verdict
    status: int | None
    detail: str


class Sender(Protocol):
    """Sends files to one destination; returns one :class:`Attempt` per file, in order."""

    def send(self, files: Sequence[Path]) -> list[Attempt]:
        """Send ``files``; never raises for network or peer failures."""
        ...


class DicomSender:
    """C-STORE SCU to a DICOM peer; one association per batch.

    Parameters
    ----------
    destination : DicomDestination
        The peer.
    calling_ae : str
        Our AE title (``destination.calling_ae_title`` wins).
    timeout : float
        ACSE, DIMSE and network timeout in seconds.
    """

    def __init__(self, destination: DicomDestination, calling_ae: str, timeout: float):
        self.destination = destination
        self.calling_ae = destination.calling_ae_title or calling_ae
        self.timeout = timeout

    def send(self, files: Sequence[Path]) -> list[Attempt]:
        """Send ``files`` over one association."""
        items = _read(files)
        datasets = [item for item in items if isinstance(item, Dataset)]
        if not datasets:
            return [item for item in items if isinstance(item, Attempt)]
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = self.timeout
        for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
            ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        dest = self.destination
        try:
            tls = tls_args(dest)
        except ConfigError as exc:
            return _fill(items, Attempt(Verdict.RETRY, None, str(exc)))
        assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title, tls_args=tls)
        if not assoc.is_established:
            why = "rejected" if assoc.is_rejected else "not established"
            return _fill(items, Attempt(Verdict.RETRY, None, f"association {why}"))
        no_delay(assoc)
        keep_responses(assoc)
        attempts: list[Attempt] = []
        try:
            for ds in items:
                if isinstance(ds, Attempt):  # unreadable
                    attempts.append(ds)
                    continue
                if not assoc.is_established:
                    attempts.append(Attempt(Verdict.RETRY, None, "association ended"))
                    continue
                try:
                    response = assoc.send_c_store(ds)
                except (ValueError, RuntimeError) as exc:  # no accepted context, ...
                    attempts.append(Attempt(Verdict.RETRY, None, str(exc)))
                    continue
                status = int(response.Status) if "Status" in response else None
                verdict = classify_dimse(status)
                text = "no response" if status is None else f"status 0x{status:04X}"
                attempts.append(Attempt(verdict, status, text))
        finally:
            if assoc.is_established:
                assoc.release()
        return attempts


class StowSender:
    """STOW-RS to a DICOMweb server (``dicomweb-client``), one request per batch."""

    def __init__(self, destination: StowDestination, timeout: float):
        self.destination = destination
        self.timeout = timeout

    def send(self, files: Sequence[Path]) -> list[Attempt]:
        """POST ``files`` in one multipart request."""
        import requests
        from dicomweb_client.api import DICOMwebClient

        items = _read(files)
        datasets = [item for item in items if isinstance(item, Dataset)]
        if not datasets:
            return [item for item in items if isinstance(item, Attempt)]
        client = DICOMwebClient(
            url=self.destination.url,
            headers=dict(self.destination.headers),
            timeout=self.timeout,
        )
        client.set_http_retry_params(retry=False)  # the delivery table does the retrying
        try:
            client.store_instances(datasets)
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else None
            return _fill(items, Attempt(classify_http(code), code, f"HTTP {code}"))
        except (requests.RequestException, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:300]
            return _fill(items, Attempt(Verdict.RETRY, None, detail))
        return _fill(items, Attempt(Verdict.DELIVERED, 200, "stored"))


def _read(files: Sequence[Path]) -> list[Dataset | Attempt]:
    """Each result file, or the dead attempt of one that cannot be read (only its own)."""
    items: list[Dataset | Attempt] = []
    for path in files:
        try:
            items.append(pydicom.dcmread(path))
        except (OSError, InvalidDicomError) as exc:
            items.append(Attempt(Verdict.DEAD, None, f"cannot read result file: {exc}"))
    return items


def _fill(items: Sequence[Dataset | Attempt], outcome: Attempt) -> list[Attempt]:
    """``outcome`` for every dataset of ``items``; the attempts among them are kept."""
    return [item if isinstance(item, Attempt) else outcome for item in items]


def sender_for(
    destination: DicomDestination | StowDestination, *, calling_ae: str, timeout: float
) -> Sender:
    """The sender of a configured destination."""
    if isinstance(destination, StowDestination):
        return StowSender(destination, timeout)
    return DicomSender(destination, calling_ae, timeout)
