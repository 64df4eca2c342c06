"""Coded concepts used by the encoders, one table per finding kind.

SNOMED CT and DCM codes as in DICOM PS3.16; UCUM for units.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicomnode.results.findings import BreastDensity, FindingKind, Laterality

__all__ = [
    "DENSITY_CODES",
    "KIND_CODES",
    "LATERALITY_CODES",
    "UNIT_MILLILITER",
    "UNIT_MILLIMETER",
    "UNIT_NONE",
    "ABSENT",
    "BREAST_COMPOSITION",
    "CERTAINTY_OF_FINDING",
    "DIAMETER",
    "PROBABILITY_OF_CANCER",
    "SUM_OF_VOXEL_VOLUMES",
    "TOTAL",
    "VOLUME",
    "KindCodes",
    "procedure_code",
]


@dataclass(frozen=True)
class KindCodes:
    """Codes describing one finding kind.

    Parameters
    ----------
    category : Code
        Segmented property category / finding category (CID 7150).
    type : Code
        Segmented property type / finding type (CID 7151).
    anatomy : Code
        Anatomic region / finding site (CID 4).
    title : str
        Short human-readable name for labels (<= 64 characters).
    body_part : str
        Body Part Examined (PS3.16 Annex L) when the sources do not say.
    """

    category: Code
    type: Code
    anatomy: Code
    title: str
    body_part: str


KIND_CODES: dict[FindingKind, KindCodes] = {
    FindingKind.LUNG_NODULE: KindCodes(
        category=codes.SCT.MorphologicallyAbnormalStructure,  # 49755003
        type=codes.SCT.Nodule,  # 27925004
        anatomy=codes.SCT.Lung,  # 39607008
        title="Lung nodule",
        body_part="CHEST",
    ),
    FindingKind.BRAIN_LESION: KindCodes(
        category=codes.SCT.MorphologicallyAbnormalStructure,  # 49755003
        type=codes.SCT.Lesion,  # 52988006
        anatomy=codes.SCT.Brain,  # 12738006
        title="Brain lesion",
        body_part="BRAIN",
    ),
    FindingKind.BREAST_ASSESSMENT: KindCodes(
        category=codes.SCT.Finding,  # 404684003
        type=codes.SCT.BreastComposition,  # 129715009
        anatomy=codes.SCT.Breast,  # 76752008
        title="Breast assessment",
        body_part="BREAST",
    ),
}

DENSITY_CODES: dict[BreastDensity, Code] = {  # CID 6000 Overall Breast Composition
    BreastDensity.A: codes.SCT.AlmostEntirelyFat,  # 129716005
    BreastDensity.B: codes.SCT.ScatteredFibroglandularDensities,  # 129717001
    BreastDensity.C: codes.SCT.HeterogeneouslyDense,  # 129718006
    BreastDensity.D: codes.SCT.ExtremelyDense,  # 129719003
}

LATERALITY_CODES: dict[Laterality, Code] = {  # CID 244 Laterality
    Laterality.LEFT: codes.SCT.Left,  # 7771000
    Laterality.RIGHT: codes.SCT.Right,  # 24028007
}

UNIT_MILLIMETER = codes.UCUM.Millimeter
UNIT_MILLILITER = Code("mL", "UCUM", "milliliter")
UNIT_NONE = codes.UCUM.NoUnits

CERTAINTY_OF_FINDING = codes.DCM.CertaintyOfFinding  # 111012, detection score in [0, 1]
PROBABILITY_OF_CANCER = codes.DCM.ProbabilityOfCancer  # 111047, mammo suspicion score
BREAST_COMPOSITION = codes.SCT.BreastComposition  # 129715009, value from CID 6000
DIAMETER = codes.SCT.Diameter  # 81827009
VOLUME = codes.SCT.Volume  # 118565006
ABSENT = codes.SCT.Absent  # 272519000, CID 240 Present-Absent
TOTAL = codes.SCT.Total  # 255619001, CID 7464 derivation of a burden (sum over findings)
SUM_OF_VOXEL_VOLUMES = codes.DCM.SumOfSegmentedVoxelMethodForVolume  # 126030, CID 7474


def procedure_code(modality: str) -> Code:
    """Procedure reported for TID 1500 (CID 100), by source modality."""
    table = {
        "CT": codes.cid100.CTUnspecifiedBodyRegion,
        "MR": codes.cid100.MRIUnspecifiedBodyRegion,
        "MG": codes.SCT.Mammography,
    }
    return table.get(modality, codes.cid100.ImagingProcedure)
