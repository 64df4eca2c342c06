"""QIDO-RS and WADO-RS towards a DICOMweb source: priors found and retrieved over HTTP.

The counterpart of :mod:`dicomnode.net.query` (C-FIND) and :mod:`dicomnode.net.retrieve`
(C-MOVE/C-GET) for a ``sources`` entry with a ``url``
(:class:`~dicomnode.config.schema.DicomwebSource`). HTTP goes through urllib3 (a runtime
dependency already: the webhook sender uses it) rather than dicomweb-client: WADO-RS answers
are streamed, chunk by chunk, through the STOW-RS receiver's multipart parser
(:class:`~dicomnode.api.stow_parts.PartSpooler`, python-multipart) into spool files, so a
series is never held in memory, its instances are stored byte for byte as the source sent
them, and ``priors.max_bytes`` stops a response mid-way; dicomweb-client decodes every part
into a pydicom data set in memory. The parts are then stored through the same path as
received instances (:class:`~dicomnode.net.receive.Receiver`) with origin ``prior``.

Every request has a connect and a read timeout, follows no redirect and is not retried; an
``https`` server's certificate is checked (against ``ca`` when the source names one). Every
failure is one :class:`~dicomnode.errors.QueryFailed`; identifiers are never logged.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from pydicom.dataset import Dataset

from dicomnode.config.schema import DicomwebSource
from dicomnode.errors import QueryFailed
from dicomnode.net.query import StudyFound
from dicomnode.net.receive import Receiver
from dicomnode.store.models import SeriesOrigin

if TYPE_CHECKING:
    from dicomnode.api.stow_parts import PartSpooler

__all__ = ["DicomwebSearch", "Fetched", "probe", "source_label"]

#: Bytes of a QIDO-RS answer read at most (a study or series list, not images).
MAX_QIDO_BYTES = 32 * 1024 * 1024
_CHUNK = 256 * 1024
_PEER_LENGTH = 80  # the audit trail's peer column
_JSON = "application/dicom+json"
_DICOM_PARTS = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@dataclass(frozen=True)
class Fetched:
    """What one WADO-RS retrieval stored: instances stored and failed, and body bytes."""

    stored: int
    failed: int
    bytes: int


def source_label(source: DicomwebSource) -> str:
    """``scheme://host[:port]/path`` of the source (no user info, query or fragment)."""
    parts = urlsplit(source.url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _pool(source: DicomwebSource) -> urllib3.PoolManager:
    options: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
    if source.ca is not None:
        options["ca_certs"] = str(source.ca)
    return urllib3.PoolManager(retries=False, **options)


class DicomwebSearch:
    """QIDO-RS searches and WADO-RS retrievals at one DICOMweb source.

    Parameters
    ----------
    source : DicomwebSource
        The source (URL, headers, CA).
    cancelled : threading.Event, optional
        Set from another thread (``priors.timeout``): a retrieval stops at its next chunk and
        later requests fail at once.
    """

    def __init__(self, source: DicomwebSource, cancelled: threading.Event | None = None):
        self.source = source
        self.label = source_label(source)
        self.cancelled = cancelled or threading.Event()
        self._pool = _pool(source)
        self._base = source.url.rstrip("/")

    def find_studies(
        self, patient_id: str, *, issuer: str | None, dates: str, timeout: float
    ) -> list[StudyFound]:
        """The studies of a patient (``GET /studies?PatientID=…``), newest first.

        Raises
        ------
        QueryFailed
            A PatientID with wildcards, no answer, an HTTP error, an unreadable answer.
        """
        if not patient_id or any(c in patient_id for c in "*?\\"):
            raise QueryFailed(self.label, "no usable PatientID (empty, or a wildcard)")
        query = [("PatientID", patient_id), ("includefield", "StudyTime")]
        if issuer:
            query.append(("IssuerOfPatientID", issuer))
        if dates:
            query.append(("StudyDate", dates))
        studies = [
            StudyFound(
                str(found.get("StudyInstanceUID", "")),
                str(found.get("StudyDate") or "") or None,
                str(found.get("StudyTime") or ""),
            )
            for found in self.search("/studies", query, timeout)
        ]
        return sorted(
            (s for s in studies if s.study_uid),
            key=lambda s: (s.study_date or "", s.study_time),
            reverse=True,
        )

    def find_series(
        self, study_uid: str, *, keys: list[str], modality: str | None, timeout: float
    ) -> list[Dataset]:
        """The series of a study (``GET /studies/{study}/series``) with ``keys`` included.

        Raises
        ------
        QueryFailed
            No answer, an HTTP error, an unreadable answer.
        """
        query = [("includefield", key) for key in keys]
        if modality:
            query.append(("Modality", modality))
        return self.search(f"/studies/{quote(study_uid, safe='')}/series", query, timeout)

    def retrieve_series(
        self,
        study_uid: str,
        series_uid: str,
        *,
        receiver: Receiver,
        max_bytes: int,
        timeout: float,
    ) -> Fetched:
        """WADO-RS one series; its instances are stored through ``receiver`` as priors.

        The body is spooled part by part and stored once it is complete: a response that
        fails, ends early or grows beyond ``max_bytes`` stores nothing.

        Raises
        ------
        QueryFailed
            No answer, an HTTP error, a malformed body, above ``max_bytes``, cancelled or
            past ``timeout``.
        """
        # imported here: dicomnode.api imports the jobs package, whose worker imports this
        from dicomnode.api.stow_parts import MalformedBody, PartSpooler, media_type, store_parts

        path = f"/studies/{quote(study_uid, safe='')}/series/{quote(series_uid, safe='')}"
        response = self._get(path, [], _DICOM_PARTS, timeout)
        spooler: PartSpooler | None = None
        done = False
        try:
            media, options = media_type(response.headers.get("content-type", ""))
            boundary = options.get("boundary", "")
            if media != "multipart/related" or not boundary or not boundary.isascii():
                raise QueryFailed(self.label, f"WADO-RS answered {media or 'no type'}, not parts")
            spooler = PartSpooler(receiver, boundary.encode("ascii"))
            size = self._stream(response, spooler, max_bytes, time.monotonic() + timeout)
            parts = spooler.finish()
            done = True
            peer = f"wado:{self.label}"[:_PEER_LENGTH]
            outcome = store_parts(receiver, parts, peer, study_uid, SeriesOrigin.PRIOR)
        except MalformedBody as exc:
            raise QueryFailed(self.label, f"WADO-RS: {exc}") from None
        finally:
            if done:
                response.release_conn()
            else:  # unread data: the connection is not reused
                response.close()
            if spooler is not None:
                spooler.discard()
        return Fetched(len(outcome.stored), len(outcome.failed), size)

    def _stream(self, response: Any, spooler: PartSpooler, max_bytes: int, deadline: float) -> int:
        size = 0
        try:
            for chunk in response.stream(_CHUNK):
                if self.cancelled.is_set():
                    raise QueryFailed(self.label, "cancelled (priors.timeout)")
                if time.monotonic() > deadline:
                    raise QueryFailed(self.label, "WADO-RS did not finish in time")
                size += len(chunk)
                if size > max_bytes:
                    raise QueryFailed(
                        self.label,
                        f"series above what is left of priors.max_bytes ({max_bytes} bytes)",
                    )
                spooler.feed(chunk)
        except urllib3.exceptions.HTTPError as exc:
            raise QueryFailed(self.label, f"WADO-RS: {type(exc).__name__}") from None
        return size

    def search(self, path: str, query: list[tuple[str, str]], timeout: float) -> list[Dataset]:
        """One QIDO-RS request: the matches (DICOM JSON) as data sets (QueryFailed on failure)."""
        response = self._get(path, query, _JSON, timeout)
        try:
            body = response.read(MAX_QIDO_BYTES + 1)
        except urllib3.exceptions.HTTPError as exc:
            response.close()
            raise QueryFailed(self.label, f"QIDO-RS: {type(exc).__name__}") from None
        if len(body) > MAX_QIDO_BYTES:
            response.close()  # unread data: the connection is not reused
            raise QueryFailed(self.label, f"QIDO-RS answer above {MAX_QIDO_BYTES} bytes")
        response.release_conn()
        if response.status == 204 or not body.strip():
            return []
        try:
            items = json.loads(body)
            if not isinstance(items, list):
                raise ValueError("not a list")
            return [Dataset.from_json(item) for item in items]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # the exception's text may quote a value (an identifier): only its kind is kept
            raise QueryFailed(
                self.label, f"QIDO-RS answer unreadable ({type(exc).__name__})"
            ) from None

    def _get(self, path: str, query: list[tuple[str, str]], accept: str, timeout: float) -> Any:
        """A streamed GET; QueryFailed unless it answered 200 or 204."""
        if self.cancelled.is_set():
            raise QueryFailed(self.label, "cancelled (priors.timeout)")
        url = self._base + path + (f"?{urlencode(query)}" if query else "")
        try:
            response = self._pool.request(
                "GET",
                url,
                headers={**self.source.headers, "Accept": accept},
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                redirect=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise QueryFailed(self.label, f"no answer ({type(exc).__name__})") from None
        if response.status not in (200, 204):
            response.drain_conn()
            response.release_conn()
            raise QueryFailed(self.label, f"HTTP {response.status}")
        return response


def probe(source: DicomwebSource, *, timeout: float) -> str | None:
    """None when the source answers a QIDO-RS ``GET /studies?limit=1``, else why not."""
    try:
        DicomwebSearch(source).search("/studies", [("limit", "1")], timeout)
    except QueryFailed as exc:
        return exc.reason
    return None
