"""dicomnode.results: findings model and DICOM encoders (SEG, TID 1500 SR, summary image).

Pipelines import only the findings types; importing them (``from dicomnode.results import
Findings``) loads neither pydicom nor highdicom: the encoders are imported on first use.
The node calls :func:`encode`.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from dicomnode.results.findings import (
    BreastDensity,
    Classification,
    ClassProbability,
    FindingKind,
    Findings,
    Laterality,
    Mask,
    RegionFinding,
    RegionShape,
    Vector3,
    VolumeGeometry,
)
from dicomnode.results.kinds import DEFAULT_OUTPUTS, OutputKind

if TYPE_CHECKING:
    from dicomnode.results.common import MANUFACTURER, RESEARCH_LABEL, Algorithm, Predecessor
    from dicomnode.results.decode import findings_from_sr
    from dicomnode.results.errors import EncodingError
    from dicomnode.results.outputs import encode
    from dicomnode.results.sources import geometry_from_datasets

__all__ = [
    "DEFAULT_OUTPUTS",
    "MANUFACTURER",
    "RESEARCH_LABEL",
    "Algorithm",
    "BreastDensity",
    "ClassProbability",
    "Classification",
    "EncodingError",
    "FindingKind",
    "Findings",
    "Laterality",
    "Mask",
    "OutputKind",
    "Predecessor",
    "RegionFinding",
    "RegionShape",
    "Vector3",
    "VolumeGeometry",
    "encode",
    "findings_from_sr",
    "geometry_from_datasets",
]

_LAZY = {
    "MANUFACTURER": "common",
    "RESEARCH_LABEL": "common",
    "Algorithm": "common",
    "Predecessor": "common",
    "encode": "outputs",
    "EncodingError": "errors",
    "findings_from_sr": "decode",
    "geometry_from_datasets": "sources",
}


def __getattr__(name: str) -> Any:
    """Import the encoders (pydicom, highdicom, Pillow) only when first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


logging.getLogger(__name__).addHandler(logging.NullHandler())
