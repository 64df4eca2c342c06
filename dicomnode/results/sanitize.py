"""One sanitizer for every attribute a result object copies from its sources.

Real scanner exports carry values no standard allows (``PatientSex '0000'``, CS values with
trailing NULs, over-long LO values) and highdicom, rightly, refuses to copy them into a SEG, SR
or secondary capture. The encoders copy the Patient, General Study, Patient Study and Clinical
Trial modules from the sources (highdicom's ``copy_patient_and_study_information``); this module
checks the root attributes of exactly those modules, as highdicom's module tables list them,
against their VR (pydicom's validators) and, where the standard enumerates them, their values:

* trailing NULs and spaces are trimmed, over-long values cut at a character boundary;
* a value still invalid is emptied when the attribute is Type 2 (or 2C) and dropped when it is
  Type 3 (or 1C: its condition is then not met by our copy);
* an invalid Type 1 attribute (StudyInstanceUID) cannot be repaired:
  :class:`UnrepairableHeader`, a permanent error (retrying cannot help).

The sources themselves are never changed: the encoders get shallow copies, and the caller gets
the keywords that were changed (never the values: they are patient data).
"""

from __future__ import annotations

import copy as pycopy
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import MAX_VALUE_LEN, PersonName, validate_value

from dicomnode.errors import PermanentError
from dicomnode.results.errors import EncodingError

__all__ = ["COPIED_MODULES", "Sanitized", "UnrepairableHeader", "sanitize_sources"]

#: The modules the encoders copy from the sources (highdicom's patient and study information).
COPIED_MODULES = (
    "patient",
    "general-study",
    "patient-study",
    "clinical-trial-subject",
    "clinical-trial-study",
)

#: Enumerated values (PS3.3) of the copied attributes that have them.
ENUMERATED: dict[str, frozenset[str]] = {
    "PatientSex": frozenset({"M", "F", "O"}),
    "PatientSexNeutered": frozenset({"ALTERED", "UNALTERED"}),
    "QualityControlSubject": frozenset({"YES", "NO"}),
    "PatientIdentityRemoved": frozenset({"YES", "NO"}),
    "SmokingStatus": frozenset({"YES", "NO", "UNKNOWN"}),
}

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC"}
_TEXT_VRS |= {"UI", "UR", "UT"}
_CUT_VRS = {"LO", "LT", "SH", "ST", "UC", "UT"}  # free text: a cut value is still meaningful


class UnrepairableHeader(EncodingError, PermanentError):
    """A Type 1 attribute the results need has no valid value in the sources.

    Parameters
    ----------
    keyword : str
        The attribute, e.g. ``StudyInstanceUID``.
    """

    def __init__(self, keyword: str):
        self.keyword = keyword
        super().__init__(
            f"the sources' {keyword} is not a valid value and results cannot be made without "
            f"it (Type 1); fix {keyword} at the sender and send the series again"
        )


@dataclass(frozen=True)
class Sanitized:
    """Shallow copies of the sources, fit to copy from, and the keywords that were changed."""

    datasets: tuple[Dataset, ...]
    repaired: tuple[str, ...]


@cache
def _copied_attributes() -> tuple[tuple[str, str], ...]:
    """``(keyword, type)`` of the root attributes of :data:`COPIED_MODULES`."""
    from highdicom._standard_utils import get_module_attribute_map

    table = get_module_attribute_map()
    seen: dict[str, str] = {}
    for module in COPIED_MODULES:
        for item in table[module]:
            if not item["path"]:
                seen.setdefault(str(item["keyword"]), str(item["type"]))
    return tuple(seen.items())


def sanitize_sources(sources: Sequence[Dataset]) -> Sanitized:
    """Check and repair what the encoders copy from ``sources``.

    Parameters
    ----------
    sources : sequence of pydicom.Dataset
        The source instances (unchanged by this call).

    Returns
    -------
    Sanitized
        One shallow copy per source (same pixel data, same elements but the repaired ones) and
        the sorted keywords repaired in any of them.

    Raises
    ------
    UnrepairableHeader
        A Type 1 attribute is invalid.
    """
    repaired: set[str] = set()
    copies = []
    for source in sources:
        copy = _shallow_copy(source)
        # No character set declared: only the default repertoire (ASCII) may be copied; a
        # Latin-1 name without one is undecodable for a reader, and invalid for dciodvfy.
        ascii_only = not source.get("SpecificCharacterSet")
        for keyword, kind in _copied_attributes():
            if keyword in copy and _repair(copy, keyword, kind, ascii_only=ascii_only):
                repaired.add(keyword)
        copies.append(copy)
    return Sanitized(tuple(copies), tuple(sorted(repaired)))


def _shallow_copy(source: Dataset) -> Dataset:
    """A copy sharing the source's elements (pixel data included) but not its element dict.

    ``Dataset.copy()`` shares the dict itself: replacing an element there would change the
    source too.
    """
    copy = pycopy.copy(source)
    copy._dict = dict(source._dict)
    return copy


def _repair(ds: Dataset, keyword: str, kind: str, *, ascii_only: bool = False) -> bool:
    """Repair ``ds.<keyword>`` in place (a new element, never the source's); whether it changed."""
    elem = ds[keyword]
    if elem.VR == "SQ":
        if _valid_items(elem.value):
            return False
        return _invalid(ds, keyword, kind, elem)
    try:
        value = _tidy(elem.VR, elem.value)
    except (TypeError, ValueError, UnicodeError):
        return _invalid(ds, keyword, kind, elem)
    if not _valid(elem.VR, keyword, value) or (ascii_only and not _ascii(elem.VR, value)):
        return _invalid(ds, keyword, kind, elem)
    if _same(value, elem.value):
        return False
    ds[keyword] = DataElement(elem.tag, elem.VR, value)
    return True


def _invalid(ds: Dataset, keyword: str, kind: str, elem: DataElement) -> bool:
    if kind == "1":
        raise UnrepairableHeader(keyword)
    if kind.startswith("2"):
        if elem.value in (None, "", []) or (elem.VR == "SQ" and len(elem.value) == 0):
            return False
        ds[keyword] = DataElement(elem.tag, elem.VR, [] if elem.VR == "SQ" else None)
    else:
        del ds[keyword]
    return True


def _tidy(vr: str, value: Any) -> Any:
    """Trailing NULs and spaces trimmed; free text cut to the VR's maximum length."""
    if vr not in _TEXT_VRS or value is None:
        return value
    if isinstance(value, bytes):
        value = value.decode("ascii")  # undecoded bytes: only ASCII is safe to keep
    if isinstance(value, MultiValue | list | tuple):
        return [_tidy_one(vr, v) for v in value]
    return _tidy_one(vr, value)


def _tidy_one(vr: str, value: Any) -> Any:
    if isinstance(value, PersonName):
        text = str(value).rstrip("\x00 ")
        return PersonName(text) if text != str(value) else value
    if not isinstance(value, str):
        return value
    text = value.rstrip("\x00 ")
    limit = MAX_VALUE_LEN.get(vr)
    if vr in _CUT_VRS and limit is not None and len(text) > limit:
        text = text[:limit].rstrip(" ")
    return text


def _valid(vr: str, keyword: str, value: Any) -> bool:
    values = value if isinstance(value, list | MultiValue) else [value]
    allowed = ENUMERATED.get(keyword)
    for one in values:
        if one is None or one == "":
            continue
        if allowed is not None and str(one) not in allowed:
            return False
        try:
            validate_value(vr, str(one) if vr in _TEXT_VRS else one, pydicom_config.RAISE)
        except (ValueError, TypeError, KeyError):
            return False
    return True


def _ascii(vr: str, value: Any) -> bool:
    values = value if isinstance(value, list | MultiValue) else [value]
    return vr not in _TEXT_VRS or all(str(one).isascii() for one in values if one is not None)


def _valid_items(items: Sequence[Dataset]) -> bool:
    """Whether every text value in a sequence's items is valid for its VR (recursively)."""
    for item in items:
        for elem in item:
            if elem.VR == "SQ":
                if not _valid_items(elem.value):
                    return False
            elif elem.VR in _TEXT_VRS:
                try:
                    value = _tidy(elem.VR, elem.value)
                except (TypeError, ValueError, UnicodeError):
                    return False
                if not _same(value, elem.value) or not _valid(elem.VR, elem.keyword, value):
                    return False
    return True


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | MultiValue) or isinstance(b, list | MultiValue):
        return [str(x) for x in a or []] == [str(x) for x in b or []]
    return str(a) == str(b)
