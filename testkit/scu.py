"""A pynetdicom SCU that sends files exactly as they are (hostile or broken ones included)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom.config
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, MRImageStorage  # type: ignore[attr-defined]

from dicomnode.net.peer import keep_responses, no_delay

__all__ = ["associate_as", "lenient_pydicom", "send_raw", "write_as_is"]


@contextmanager
def lenient_pydicom() -> Iterator[None]:
    """Let pydicom write and pynetdicom send values they would refuse, file bytes as they are."""
    settings = pydicom.config.settings
    old = settings.writing_validation_mode, settings.reading_validation_mode
    settings.writing_validation_mode = pydicom.config.IGNORE
    settings.reading_validation_mode = pydicom.config.IGNORE
    old_chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        settings.writing_validation_mode, settings.reading_validation_mode = old
        _config.STORE_SEND_CHUNKED_DATASET = old_chunked


def write_as_is(ds: Dataset, path: Path) -> Path:
    """Write as Part 10 with the file meta exactly as given (no fixing up by pydicom)."""
    ds.preamble = b"\x00" * 128
    ds.file_meta.FileMetaInformationVersion = b"\x00\x01"
    ds.file_meta.ImplementationClassUID = "1.2.3.4"
    ds.save_as(path, enforce_file_format=False)
    return path


def send_raw(
    port: int,
    paths: list[Path],
    *,
    ae_title: str = "RAWSCU",
    syntaxes: tuple[str, ...] = (ExplicitVRLittleEndian,),
) -> list[int | None]:
    """Send ``paths`` over one association as they are; the C-STORE status of each.

    One CT and one MR context per transfer syntax in ``syntaxes``: each file goes on the
    context of its own file meta's transfer syntax.
    """
    ae = AE(ae_title=ae_title)
    for syntax in syntaxes:
        ae.add_requested_context(CTImageStorage, [syntax])
        ae.add_requested_context(MRImageStorage, [syntax])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    statuses: list[int | None] = []
    with lenient_pydicom():
        assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
        assert assoc.is_established
        no_delay(assoc)  # PITFALLS: Nagle holds each request after the first for ~45 ms
        keep_responses(assoc)
        try:
            for path in paths:
                status = assoc.send_c_store(path)
                statuses.append(int(status.Status) if status else None)
        finally:
            if assoc.is_established:
                assoc.release()
    return statuses


def associate_as(port: int, ae_title: str) -> tuple[bool, bool]:
    """Request an association with Verification as ``ae_title``: (established, rejected)."""
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
    established, rejected = bool(assoc.is_established), bool(assoc.is_rejected)
    if established:
        assoc.release()
    return established, rejected
