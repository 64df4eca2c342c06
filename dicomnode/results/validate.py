"""Every result object is checked before it may leave the node.

PACS vendors reject or silently mangle invalid objects; the node checks its own first:

* the mandatory modules of the object's IOD hold their top-level Type 1 and Type 2
  attributes, Type 1 ones with a value (highdicom's module tables and
  ``check_required_attributes``);
* every text value, at any depth, is valid for its VR (pydicom's validators);
* a SEG references only source instances that exist (its derivation images and referenced
  series);
* ``dciodvfy`` (dicom3tools), when installed, reports no error.

:func:`validate` returns the problems found (one line each, attribute keywords and checks,
never values); an object with problems is not written, not sent, and its job says why.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Collection
from pathlib import Path

from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import validate_value

__all__ = ["DCIODVFY", "validate"]

#: The IOD validator of dicom3tools, when installed.
DCIODVFY = shutil.which("dciodvfy", path="/usr/bin") or shutil.which("dciodvfy")

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM"}
_TEXT_VRS |= {"UC", "UI", "UR", "UT"}
_SEG = "1.2.840.10008.5.1.4.1.1.66.4"
#: Modules whose root attributes highdicom's tables list without their conditions: the SR
#: content tree's Type 1C items (e.g. ReferencedSOPSequence) read as always required. Their
#: content is checked by highdicom when it builds the tree and by dciodvfy.
_NOT_CHECKED = frozenset({"sr-document-content"})
_MAX_PROBLEMS = 5


def validate(ds: Dataset, source_uids: Collection[str], *, dciodvfy: bool = True) -> list[str]:
    """The problems that keep ``ds`` from being sent (empty when it may go).

    Parameters
    ----------
    ds : pydicom.Dataset
        A result object, with its file meta.
    source_uids : collection of str
        SOP Instance UIDs of the source instances it was made from.
    dciodvfy : bool
        Also run dicom3tools' ``dciodvfy`` when it is installed.
    """
    problems = _required(ds) + _values(ds)
    if str(ds.SOPClassUID) == _SEG:
        problems += _seg_references(ds, set(source_uids))
    if dciodvfy and DCIODVFY is not None and not problems:
        problems += _dciodvfy(ds)
    return problems[:_MAX_PROBLEMS]


def _required(ds: Dataset) -> list[str]:
    from highdicom._standard_utils import (
        check_required_attributes,
        get_iod_module_map,
        get_module_attribute_map,
        get_sop_class_iod_map,
    )

    iod = get_sop_class_iod_map().get(str(ds.SOPClassUID))
    if iod is None:
        return [f"unknown SOP class {ds.SOPClassUID}"]
    attributes = get_module_attribute_map()
    problems = []
    for module in get_iod_module_map()[iod]:
        if module["usage"] != "M" or module["key"] in _NOT_CHECKED:
            continue
        try:
            check_required_attributes(ds, module["key"], recursive=False)
        except AttributeError as exc:
            problems.append(f"{module['key']}: {exc}")
        for item in attributes[module["key"]]:
            keyword = str(item["keyword"])
            if not item["path"] and item["type"] == "1" and keyword in ds and _empty(ds[keyword]):
                problems.append(f"{module['key']}: Type 1 {keyword} is empty")
    return problems


def _empty(elem: DataElement) -> bool:
    if elem.VR == "SQ":
        return len(elem.value) == 0
    return elem.value is None or elem.value in ("", b"")


def _values(ds: Dataset) -> list[str]:
    problems: list[str] = []

    def check(_: Dataset, elem: object) -> None:
        vr, value = getattr(elem, "VR", ""), getattr(elem, "value", None)
        if vr not in _TEXT_VRS or value in (None, ""):
            return
        keyword = getattr(elem, "keyword", "") or str(getattr(elem, "tag", ""))
        values = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
        for one in values:
            try:
                validate_value(vr, str(one), pydicom_config.RAISE)
            except (ValueError, TypeError, KeyError):
                problems.append(f"{keyword}: not a valid {vr} value")
                return

    ds.walk(check)
    return problems


def _seg_references(ds: Dataset, sources: set[str]) -> list[str]:
    referenced: set[str] = set()
    for series in ds.get("ReferencedSeriesSequence", []):
        referenced |= {str(i.ReferencedSOPInstanceUID) for i in series.ReferencedInstanceSequence}
    for frame in ds.get("PerFrameFunctionalGroupsSequence", []):
        for derivation in frame.get("DerivationImageSequence", []):
            for image in derivation.get("SourceImageSequence", []):
                referenced.add(str(image.ReferencedSOPInstanceUID))
    missing = referenced - sources
    if missing:
        return [f"SEG references {len(missing)} instance(s) that are not among its sources"]
    if not referenced:
        return ["SEG references no source instance"]
    return []


def _dciodvfy(ds: Dataset) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="dicomnode-validate-") as tmp:
        path = Path(tmp) / "object.dcm"
        ds.save_as(path, enforce_file_format=True)
        try:
            run = subprocess.run(
                [str(DCIODVFY), str(path)],
                capture_output=True,
                text=True,
                errors="replace",  # it echoes values as they are: Latin-1 bytes, ISO 2022...
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [f"dciodvfy could not run: {type(exc).__name__}"]
    lines = (run.stdout + run.stderr).splitlines()
    # dciodvfy's error lines name the attribute and the rule; values can follow a colon
    # (e.g. an invalid date): keep the part before the value.
    return [f"dciodvfy: {_without_value(ln.strip())}" for ln in lines if ln.startswith("Error")]


def _without_value(line: str) -> str:
    return line.split(" - Value is ", 1)[0].split(" = <", 1)[0][:200]
