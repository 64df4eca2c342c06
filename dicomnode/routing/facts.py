"""What routing knows about a series: :class:`SeriesFacts`, and reading one key's values."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from dicomnode.routing.conditions import Observed

__all__ = ["SeriesFacts", "observe"]

#: VRs whose values are numbers: texts compare with them numerically, they render unquoted.
NUMERIC_VRS = frozenset({"DS", "IS", "US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"})


@dataclass(frozen=True)
class SeriesFacts:
    """One series as routing sees it.

    Parameters
    ----------
    study_uid : str
        StudyInstanceUID.
    series_uid : str
        SeriesInstanceUID.
    header : pydicom.Dataset
        The header (no pixel data needed) of one representative instance. Kept out of
        ``repr`` so that logging a ``SeriesFacts`` never prints patient identifiers.
    instances : int
        Number of instances of the series.
    calling_ae : str, optional
        AE title of the sender; None when unknown (e.g. files read from disk).
    """

    study_uid: str
    series_uid: str
    header: Dataset = field(repr=False, compare=False)
    instances: int
    calling_ae: str | None = None

    def __post_init__(self) -> None:
        if self.instances < 0:
            raise ValueError(f"instances must be 0 or more, got {self.instances}")

    @classmethod
    def from_header(
        cls, header: Dataset, *, instances: int, calling_ae: str | None = None
    ) -> SeriesFacts:
        """Facts of the series of ``header``, taking the UIDs from it.

        Raises
        ------
        ValueError
            The header has no StudyInstanceUID or SeriesInstanceUID.
        """
        study_uid = str(header.get("StudyInstanceUID", "") or "")
        series_uid = str(header.get("SeriesInstanceUID", "") or "")
        if not study_uid or not series_uid:
            raise ValueError("the header lacks StudyInstanceUID or SeriesInstanceUID")
        return cls(study_uid, series_uid, header, instances, calling_ae)

    @property
    def series_number(self) -> int | None:
        """SeriesNumber of the representative instance, if it has a usable one."""
        value = self.header.get("SeriesNumber")
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    @property
    def modality(self) -> str:
        """Modality, or '' when absent."""
        return str(self.header.get("Modality", "") or "").strip()

    @property
    def description(self) -> str:
        """SeriesDescription, or '' when absent."""
        return str(self.header.get("SeriesDescription", "") or "").strip()


def observe(facts: SeriesFacts, key: str, tag: BaseTag | None) -> Observed:
    """The values of one condition key for a series.

    Parameters
    ----------
    facts : SeriesFacts
        The series.
    key : str
        ``instances``, ``calling_ae`` or a DICOM keyword.
    tag : BaseTag, optional
        The keyword's tag (None for the special keys).

    Returns
    -------
    Observed
        The values; empty when the attribute is absent or empty.
    """
    if key == "instances":
        return Observed.of([facts.instances], numeric=True)
    if key == "calling_ae":
        return Observed.of([facts.calling_ae] if facts.calling_ae is not None else [])
    if tag is None:
        raise ValueError(f"{key!r} is neither a special key nor resolved to a tag")
    element = facts.header.get(Tag(tag))
    if element is None or element.is_empty:
        return Observed(())
    value = element.value
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return Observed.of(values, numeric=element.VR in NUMERIC_VRS)
