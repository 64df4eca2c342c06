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
    "CHANGE_CODES",
    "CHANGE_SINCE_PRIOR",
    "COMMENT",
    "COMPARISON_DONE",
    "INTERVAL_SINCE_PRIOR",
    "NO",
    "PRIOR_VOLUME",
    "PRIVATE_SCHEME",
    "PRIVATE_SCHEME_NAME",
    "RESOLVED",
    "UNIT_DAY",
    "UNIT_PERCENT",
    "VOLUME_CHANGE",
    "VOLUME_DOUBLING_TIME",
    "YES",
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


# Change since a prior study (issue 17). DICOM PS3.16 and the SNOMED subset in DICOM have no
# concept for a volume doubling time, a volume change or the volume at a prior visit: they are
# coded in our private scheme (a designator beginning "99", PS3.3 8.2.2), declared in the
# Coding Scheme Identification Sequence of every SR that uses it and listed in
# docs/conformance.md.
PRIVATE_SCHEME = "99DICOMNODE"
PRIVATE_SCHEME_NAME = "dicomnode private concepts"
VOLUME_DOUBLING_TIME = Code("VDT", PRIVATE_SCHEME, "Volume doubling time")
VOLUME_CHANGE = Code("VOLCHG", PRIVATE_SCHEME, "Volume change since prior")
PRIOR_VOLUME = Code("PRIORVOL", PRIVATE_SCHEME, "Volume at prior study")
INTERVAL_SINCE_PRIOR = Code("INTERVAL", PRIVATE_SCHEME, "Interval since prior study")
CHANGE_SINCE_PRIOR = Code("CHANGE", PRIVATE_SCHEME, "Change since prior study")
RESOLVED = Code("RESOLVED", PRIVATE_SCHEME, "Resolved")
COMPARISON_DONE = codes.DCM.ComparisonWithPriorStudyDone  # 122140
COMMENT = codes.DCM.Comment  # 121106
YES = codes.SCT.Yes  # 373066001
NO = codes.SCT.No  # 373067005
UNIT_DAY = Code("d", "UCUM", "day")
UNIT_PERCENT = Code("%", "UCUM", "percent")
CHANGE_CODES = {  # value of CHANGE_SINCE_PRIOR
    "new": Code("7147002", "SCT", "New"),
    "enlarging": Code("35105006", "SCT", "Increased"),
    "stable": codes.SCT.NoChange,  # 260388006
    "decreasing": codes.SCT.Decreased,  # 1250004
    "resolved": RESOLVED,
}
