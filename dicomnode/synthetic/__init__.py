"""Synthetic DICOM studies with ground truth: chest CT, brain MR (FLAIR, BraTS-style), mammography.

Every generator is a pure function of its seed and arguments: the same call gives byte-identical
datasets (UIDs included, derived from a hash of the seed). Ground truth comes back beside the
datasets as plain dataclasses (:mod:`dicomnode.synthetic.truth`).

Command line: ``python -m dicomnode.synthetic {ct,mr,brats,mg} --seed N --out DIR``.
"""

from dicomnode.synthetic.common import synthetic_uid, write_study
from dicomnode.synthetic.ct import CT_IMAGE_STORAGE, ChestCT, NoduleSpec, chest_ct
from dicomnode.synthetic.mg import MG_FOR_PRESENTATION_STORAGE, Mammogram, mammography
from dicomnode.synthetic.mr import (
    MR_IMAGE_STORAGE,
    BrainMR,
    BrainTissue,
    MRSequence,
    brain_mr,
    brats_study,
)
from dicomnode.synthetic.truth import (
    DensityClass,
    Laterality,
    Lesion,
    MammoTruth,
    Mass,
    Nodule,
    NoduleKind,
    PixelPoint,
    Projection,
    View,
    VolumeGeometry,
)

__all__ = [
    "CT_IMAGE_STORAGE",
    "MG_FOR_PRESENTATION_STORAGE",
    "MR_IMAGE_STORAGE",
    "BrainMR",
    "BrainTissue",
    "ChestCT",
    "DensityClass",
    "Laterality",
    "Lesion",
    "MRSequence",
    "Mammogram",
    "MammoTruth",
    "Mass",
    "Nodule",
    "NoduleKind",
    "NoduleSpec",
    "PixelPoint",
    "Projection",
    "View",
    "VolumeGeometry",
    "brain_mr",
    "brats_study",
    "chest_ct",
    "mammography",
    "synthetic_uid",
    "write_study",
]
