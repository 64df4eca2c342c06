"""DICOMweb STOW-RS receive (PS3.18 10.5): ``POST /dicomweb/studies[/{study}]``.

The request body (``multipart/related; type="application/dicom"``) is streamed, never held in
memory: python-multipart's streaming parser splits it, and each part (a PS3.10 file with its
File Meta Information) is written to ``<store>/.incoming/stow-*`` as it arrives. Only once the
whole body has arrived and parsed are the parts stored, one by one, on the same path as a
C-STORE (:class:`dicomnode.net.receive.Receiver`: UID, integrity and SOP class checks, fsync
before commit, ``storage.min_free``, duplicates and supersedes, audit rows, metrics), with the
SOP Class and Instance UIDs of the part's File Meta Information standing for the C-STORE
command's. A body that is cut off, malformed (400) or over ``http.max_stow_bytes`` (413)
stores nothing and leaves no spool file.

The answer is the Store Instances Response Module (PS3.18 Annex I) as ``application/dicom+json``:
Referenced SOP Sequence for the stored instances, Failed SOP Sequence with a Failure Reason for
the others (:class:`FailureReason`); HTTP 200 when all were stored, 202 when some failed, 409
when none was stored. The node has no WADO-RS: Retrieve URL is present and empty.

State changes need :func:`dicomnode.api.auth.change_access` (the bearer token, or a session
with its CSRF token; a foreign ``Origin`` was already refused). Each request is one
``stow.request`` audit row (who, from where, how many stored and failed), each failed instance
one ``store.failed`` row, as for C-STORE; the peer of those rows is ``stow:<who>@<address>``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dicomnode.api.auth import Operator, change_access
from dicomnode.api.stow_parts import MalformedBody, Part, PartSpooler, media_type, store_parts
from dicomnode.store.audit import AuditKind
from dicomnode.store.uids import uid_problem

if TYPE_CHECKING:
    from dicomnode.api.webapp import ApiContext

__all__ = ["DICOM_JSON", "router"]

log = logging.getLogger(__name__)

#: The media type of the answer.
DICOM_JSON = "application/dicom+json"
#: Bytes handed to the parser at once (the event loop hands them to a worker thread).
_FEED_BYTES = 1024 * 1024
_ANSWERS = ("application/dicom+json", "application/json", "application/*", "*/*")
_PEER_LENGTH = 80  # the audit trail's peer column

router = APIRouter(tags=["dicomweb"])


def _boundary(request: Request) -> bytes:
    """The boundary of a ``multipart/related`` body of DICOM parts; 415 or 400 otherwise."""
    media, options = media_type(request.headers.get("content-type", ""))
    if media != "multipart/related":
        raise HTTPException(415, 'expected multipart/related; type="application/dicom"')
    kind = options.get("type", "application/dicom").lower()
    if kind != "application/dicom":
        raise HTTPException(415, f"parts of type {kind[:64]!r} are not accepted")
    boundary = options.get("boundary", "")
    if not boundary or len(boundary) > 200 or not boundary.isascii():
        raise HTTPException(400, "the multipart boundary is missing or invalid")
    return boundary.encode("ascii")


def _check_accept(request: Request) -> None:
    accept = request.headers.get("accept")
    if accept is None:
        return
    offered = {item.split(";")[0].strip().lower() for item in accept.split(",")}
    if not offered & set(_ANSWERS):
        raise HTTPException(406, f"the answer is {DICOM_JSON}")


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over http.max_stow_bytes ({limit} bytes)")


def _peer(request: Request, operator: Operator) -> str:
    address = request.client.host if request.client else "?"
    return f"stow:{operator.identity}@{address}"[:_PEER_LENGTH]


async def _receive(request: Request, spooler: PartSpooler, limit: int) -> list[Part]:
    """Stream the body into ``spooler``; 413 beyond ``limit``, 400 when malformed."""
    received = 0
    pending = bytearray()
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise HTTPException(413, f"body over http.max_stow_bytes ({limit} bytes)")
            pending += chunk
            if len(pending) >= _FEED_BYTES:
                await run_in_threadpool(spooler.feed, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(spooler.feed, bytes(pending))
        return spooler.finish()
    except MalformedBody as exc:
        raise HTTPException(400, str(exc)) from None


async def _stow(request: Request, operator: Operator, study: str | None) -> JSONResponse:
    context: ApiContext = request.app.state.node
    receiver = context.receiver
    if study is not None and uid_problem(study):
        raise HTTPException(400, f"the study in the path is not a valid UID: {uid_problem(study)}")
    boundary = _boundary(request)
    _check_accept(request)
    limit = int(context.config.max_stow_bytes)
    _check_length(request, limit)
    if receiver is None:
        raise HTTPException(503, "this process does not receive instances")
    started = time.perf_counter()
    peer = _peer(request, operator)
    spooler = PartSpooler(receiver, boundary)
    try:
        parts = await _receive(request, spooler, limit)
        outcome = await run_in_threadpool(store_parts, receiver, parts, peer, study)
    finally:
        await run_in_threadpool(spooler.discard)
    detail = f"{len(outcome.stored)} stored, {len(outcome.failed)} failed"
    await run_in_threadpool(receiver.audit, AuditKind.STOW_REQUEST, peer, detail, study)
    log.info(
        "stow request",
        extra={
            "peer": peer,
            "stored": len(outcome.stored),
            "failed": len(outcome.failed),
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return JSONResponse(outcome.answer(), outcome.http_status, media_type=DICOM_JSON)


Changer = Annotated[Operator, Depends(change_access)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text}
    for code, text in (
        (202, "some instances failed (Failed SOP Sequence)"),
        (400, "malformed multipart body"),
        (401, "no token"),
        (403, "foreign Origin, or a session without its CSRF token"),
        (406, "the answer is application/dicom+json"),
        (409, "no instance was stored (Failed SOP Sequence)"),
        (413, "body over http.max_stow_bytes"),
        (415, 'not multipart/related; type="application/dicom"'),
    )
}


@router.post("/dicomweb/studies", responses=_ERRORS, response_class=JSONResponse)
async def store_instances(request: Request, operator: Changer) -> JSONResponse:
    """STOW-RS: store the instances of a ``multipart/related`` body (any studies)."""
    return await _stow(request, operator, None)


@router.post("/dicomweb/studies/{study}", responses=_ERRORS, response_class=JSONResponse)
async def store_study_instances(request: Request, operator: Changer, study: str) -> JSONResponse:
    """STOW-RS: store the instances of ``study``; an instance of another study fails (0xA900)."""
    return await _stow(request, operator, study)
