"""The one entry point: findings + source series -> the requested DICOM result objects."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from pydicom.dataset import Dataset

from dicomnode.results.common import Algorithm, EncodingContext, Predecessor, source_key
from dicomnode.results.errors import EncodingError
from dicomnode.results.findings import Findings
from dicomnode.results.kinds import DEFAULT_OUTPUTS, OutputKind
from dicomnode.results.seg import encode_seg
from dicomnode.results.sources import check_sources
from dicomnode.results.sr import encode_sr
from dicomnode.results.summary import encode_summary

__all__ = ["DEFAULT_OUTPUTS", "OutputKind", "encode"]

logger = logging.getLogger(__name__)


def _outputs(outputs: Iterable[OutputKind | str]) -> set[OutputKind]:
    try:
        return {OutputKind(o) for o in outputs}
    except ValueError as exc:
        allowed = ", ".join(k.value for k in OutputKind)
        raise EncodingError(f"outputs must be among {allowed}: {exc}") from exc


def _predecessors(
    predecessor: Predecessor | Sequence[Predecessor] | None,
) -> tuple[Predecessor, ...]:
    if predecessor is None:
        return ()
    if isinstance(predecessor, Predecessor):
        return (predecessor,)
    return tuple(predecessor)


def encode(
    findings: Findings,
    sources: Sequence[Dataset],
    *,
    algorithm: Algorithm,
    outputs: Iterable[OutputKind | str] = DEFAULT_OUTPUTS,
    uid_root: str = "2.25",
    series_number: int = 900,
    predecessor: Predecessor | Sequence[Predecessor] | None = None,
) -> list[Dataset]:
    """Encode ``findings`` as DICOM objects in the sources' study.

    Parameters
    ----------
    findings : Findings
        What the pipeline found (may be empty).
    sources : sequence of pydicom.Dataset
        The source series (or study, for study-level pipelines), headers and pixels.
    algorithm : Algorithm
        Pipeline name, version and model sha256.
    outputs : iterable of OutputKind or str
        Which objects to make; SEG is skipped when every mask is empty.
    uid_root : str
        Root of the generated UIDs (``node.uid_root``); UIDs are derived from the inputs, so
        the same call yields the same UIDs.
    series_number : int
        Series Number of the SR; SEG gets ``+1``, the summary ``+2``.
    predecessor : Predecessor or sequence of Predecessor, optional
        Earlier results this run replaces: referenced from the SR (Predecessor Documents
        Sequence) and from the SEG/summary (Related Series Sequence) of the same SOP Class.

    Returns
    -------
    list of pydicom.Dataset
        In the order SEG, SR, summary (send in this order: the SR references the SEG).

    Raises
    ------
    EncodingError
        When the inputs cannot be encoded (sources from several studies, masks that reference
        unknown instances, an invalid UID root...).
    """
    wanted = _outputs(outputs)
    check_sources(sources)
    try:
        ctx = EncodingContext(
            algorithm=algorithm,
            uid_root=uid_root,
            series_number=series_number,
            source_key=source_key(sources),
            predecessors=_predecessors(predecessor),
        )
    except ValueError as exc:
        raise EncodingError(str(exc)) from exc
    results: list[Dataset] = []
    seg = encode_seg(findings, sources, ctx) if OutputKind.SEG in wanted else None
    if seg is not None:
        results.append(seg)
    if OutputKind.SR in wanted:
        results.append(encode_sr(findings, sources, ctx, seg=seg))
    if OutputKind.SUMMARY in wanted:
        results.append(encode_summary(findings, sources, ctx))
    logger.info(
        "encoded %d result object(s) for %s %s", len(results), algorithm.name, algorithm.version
    )
    return results
