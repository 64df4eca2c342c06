"""Patient identifiers out of free text: error messages of pipelines, before they are kept.

A pipeline's exception message is third-party text: it may quote the header it choked on.
The inference child removes the identifiers of the job's own input study from every error
and refusal reason before it logs it or hands it to the worker (which stores it in the job's
``error`` column, the audit trail and the HTTP API). UIDs are kept: they are how operators
find the job, and they identify no patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

__all__ = ["REDACTED", "PatientIdentifiers", "redact"]

REDACTED = "[redacted]"
"""What replaces an identifier in redacted text."""

#: Single-valued text attributes that identify the patient (or the visit).
_TEXT_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "IssuerOfPatientID")
#: Person names: every component and the whole value are identifiers.
_NAME_KEYWORDS = ("PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName")
#: Dates: the DICOM form (YYYYMMDD) and the ISO form (YYYY-MM-DD) are identifiers.
_DATE_KEYWORDS = ("PatientBirthDate",)
#: Name components shorter than this (initials) are not redacted on their own.
_MIN_COMPONENT = 2
#: A dotted-decimal UID; never rewritten unless it is itself an identifier.
_UID = re.compile(r"(?<![0-9A-Za-z.])[0-9]+(?:\.[0-9]+)+(?![0-9A-Za-z])")


@dataclass(frozen=True)
class PatientIdentifiers:
    """The identifying strings of one or more datasets (deduplicated, longest first)."""

    values: tuple[str, ...] = ()

    @classmethod
    def from_datasets(cls, datasets: Iterable[Any]) -> PatientIdentifiers:
        """Collect the identifiers of pydicom ``datasets`` (headers are enough)."""
        found: set[str] = set()
        for ds in datasets:
            for keyword in _TEXT_KEYWORDS:
                found.update(_values(ds.get(keyword)))
            for item in ds.get("OtherPatientIDsSequence", None) or ():
                found.update(_values(item.get("PatientID")))
            for keyword in _NAME_KEYWORDS:
                for name in _values(ds.get(keyword)):
                    found.update(_name_forms(name))
            for keyword in _DATE_KEYWORDS:
                for date in _values(ds.get(keyword)):
                    found.update(_date_forms(date))
        return cls(tuple(sorted(found, key=lambda v: (-len(v), v))))

    @classmethod
    def from_files(cls, paths: Sequence[str | PathLike[str]]) -> PatientIdentifiers:
        """Identifiers in the headers of ``paths`` (unreadable files are skipped)."""
        import pydicom

        tags = [*_TEXT_KEYWORDS, *_NAME_KEYWORDS, *_DATE_KEYWORDS, "OtherPatientIDsSequence"]
        datasets = []
        for path in paths:
            try:
                datasets.append(
                    pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags, force=True)
                )
            except Exception:  # noqa: S112 - a file we cannot read holds no identifiers to find
                continue
        return cls.from_datasets(datasets)

    def __bool__(self) -> bool:
        return bool(self.values)

    def __repr__(self) -> str:  # never print what we are hiding
        return f"PatientIdentifiers(<{len(self.values)} values>)"


def redact(text: str, identifiers: PatientIdentifiers) -> str:
    """``text`` with every identifier replaced by :data:`REDACTED` (case-insensitive).

    An identifier is replaced where it stands as a token of its own (not inside a longer
    word or number). Dotted-decimal UIDs are left alone unless a whole UID is an identifier.

    Parameters
    ----------
    text : str
        Free text, e.g. an exception message.
    identifiers : PatientIdentifiers
        What to remove.

    Returns
    -------
    str
        The redacted text (``text`` itself when there is nothing to remove).
    """
    if not identifiers or not text:
        return text
    whole = {v.casefold() for v in identifiers.values}
    pattern = re.compile(
        "|".join(rf"(?<![0-9A-Za-z]){re.escape(v)}(?![0-9A-Za-z])" for v in identifiers.values),
        re.IGNORECASE,
    )
    out: list[str] = []
    position = 0
    for uid in _UID.finditer(text):
        out.append(pattern.sub(REDACTED, text[position : uid.start()]))
        out.append(REDACTED if uid.group().casefold() in whole else uid.group())
        position = uid.end()
    out.append(pattern.sub(REDACTED, text[position:]))
    return "".join(out)


def _values(element: Any) -> list[str]:
    """The non-empty string values of a data element (or of a plain value)."""
    value = getattr(element, "value", element)
    if value is None:
        return []
    items = (
        value
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"
        else [value]
    )
    return [text for item in items if (text := str(item).strip())]


def _name_forms(name: str) -> set[str]:
    """A DICOM PN value, its groups and components (``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``)."""
    forms = {name, name.rstrip("^=")}
    for group in name.split("="):
        if not group.strip("^"):
            continue
        forms.add(group.rstrip("^"))
        parts = [p.strip() for p in group.split("^") if p.strip()]
        forms.add(" ".join(parts))
        if len(parts) >= 2:
            forms.add(" ".join([*parts[1:], parts[0]]))  # "Given Family"
            forms.add(", ".join([parts[0], " ".join(parts[1:])]))  # "Family, Given"
        for part in parts:
            forms.update(w for w in [part, *part.split()] if len(w) >= _MIN_COMPONENT)
    return {f for f in forms if len(f) >= _MIN_COMPONENT}


def _date_forms(date: str) -> set[str]:
    """A DA value in DICOM and ISO form."""
    forms = {date}
    if len(date) == 8 and date.isdigit():
        forms.add(f"{date[:4]}-{date[4:6]}-{date[6:]}")
    return forms
