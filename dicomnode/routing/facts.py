"""What routing knows about a series: :class:`SeriesFacts`, and reading one key's values.

Header values are decoded only when a route reads them, and a received header may hold values
pydicom cannot decode (a US value of odd length, an unknown VR, a bad character set): such a
value counts as absent, so that one damaged attribute fails a route instead of the sweep that
evaluates every route.

Enhanced and Legacy Converted Enhanced multi-frame images keep many attributes of a classic
image in functional groups (SliceThickness and PixelSpacing in Pixel Measures, the rest in the
Unassigned Converted Attributes) and code the body part in the Frame Anatomy group: routing
reads such an attribute from the shared groups, then the first frame's, when the header has no
top-level one, and ``instances`` counts a multi-frame instance's frames; so a multi-frame series
is routed by the same rules as the same images sent one per instance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pydicom import DataElement, Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from dicomnode.routing.conditions import Observed

__all__ = ["SeriesFacts", "observe"]

log = logging.getLogger(__name__)

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
        study_uid = str(_value(header, "StudyInstanceUID") or "")
        series_uid = str(_value(header, "SeriesInstanceUID") or "")
        if not study_uid or not series_uid:
            raise ValueError("the header lacks StudyInstanceUID or SeriesInstanceUID")
        return cls(study_uid, series_uid, header, instances, calling_ae)

    @property
    def series_number(self) -> int | None:
        """SeriesNumber of the representative instance, if it has a usable one."""
        value = _value(self.header, "SeriesNumber")
        try:
            return int(value) if value not in (None, "") else None  # type: ignore[call-overload]
        except (TypeError, ValueError, OverflowError):
            return None

    @property
    def modality(self) -> str:
        """Modality, or '' when absent."""
        return str(_value(self.header, "Modality") or "").strip()

    @property
    def description(self) -> str:
        """SeriesDescription, or '' when absent."""
        return str(_value(self.header, "SeriesDescription") or "").strip()


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
        return Observed.of([facts.instances * _frames(facts.header)], numeric=True)
    if key == "calling_ae":
        return Observed.of([facts.calling_ae] if facts.calling_ae is not None else [])
    if tag is None:
        raise ValueError(f"{key!r} is neither a special key nor resolved to a tag")
    element = _element(facts.header, Tag(tag))
    if element is None or element.is_empty:
        element = _functional_element(facts.header, Tag(tag))
    if (element is None or element.is_empty) and key == "BodyPartExamined":
        return Observed.of(_body_parts(facts.header))
    if element is None or element.is_empty:
        return Observed(())
    value = element.value
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return Observed.of(values, numeric=element.VR in NUMERIC_VRS)


def _element(header: Dataset, tag: BaseTag) -> DataElement | None:
    """The decoded element, or None when absent or undecodable (see the module docstring)."""
    try:
        element = header.get(tag)
        if element is not None:
            _ = element.value, element.VR
        return element
    except Exception as exc:  # pydicom raises many kinds on hostile values; none may escape
        log.debug("undecodable value of %s counts as absent: %s", tag, type(exc).__name__)
        return None


def _frames(header: Dataset) -> int:
    """NumberOfFrames of a multi-frame header, else 1 (also when unusable)."""
    element = _element(header, Tag(0x00280008))
    try:
        return max(int(element.value), 1) if element is not None and element.value else 1
    except (TypeError, ValueError, OverflowError):
        return 1


def _group_items(header: Dataset) -> list[Dataset]:
    """The items of the shared functional groups, then of the first frame's (enhanced images)."""
    items: list[Dataset] = []
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        element = _element(header, Tag(keyword))
        if element is None or element.VR != "SQ" or not element.value:
            continue
        for group in element.value[0]:
            if group.VR == "SQ" and group.value:
                items.append(group.value[0])
    return items


def _functional_element(header: Dataset, tag: BaseTag) -> DataElement | None:
    """``tag`` from a functional group of an enhanced multi-frame header (module docstring)."""
    try:
        for item in _group_items(header):
            element = _element(item, tag)
            if element is not None and not element.is_empty:
                return element
    except Exception as exc:  # hostile nesting counts as absent, like a top-level value
        log.debug("undecodable functional groups: %s", type(exc).__name__)
    return None


def _body_parts(header: Dataset) -> list[str]:
    """BodyPartExamined terms of the Anatomic Region code of an enhanced image's Frame Anatomy.

    Converters (highdicom's legacy module, scanners) replace BodyPartExamined by the code that
    the standard maps it to (PS3.16 Annex L); every term mapped to that code is returned.
    """
    region = _functional_element(header, Tag("AnatomicRegionSequence"))
    if region is None or not region.value:
        return []
    code = str(region.value[0].get("CodeValue", "") or "")
    try:
        from highdicom._standard_utils import get_anatomic_region_map
    except ImportError:  # the table lives in highdicom (a private module): without it, absent
        return []
    return sorted(term for term, (c, _) in get_anatomic_region_map().items() if c.value == code)


def _value(header: Dataset, keyword: str) -> object:
    """The value of ``keyword``, or None when absent or undecodable."""
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    element = _element(header, Tag(tag))
    return None if element is None else element.value
