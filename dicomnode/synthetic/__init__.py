"""Synthetic DICOM studies with ground truth: chest CT, brain MR (FLAIR, BraTS-style), mammography.

Every generator is a pure function of its seed and arguments: the same call gives byte-identical
datasets (UIDs included, derived from a hash of the seed). Ground truth comes back beside the
datasets as plain dataclasses (:mod:`dicomnode.synthetic.truth`).

Domain randomisation (training data): :class:`FlairVariation` and :class:`MammoVariation` widen the
FLAIR and mammography families (bias fields, lesion contrast and sites, fat, planes, stored ranges;
breast outline, texture models, mass shapes, calcifications, exposure curves);
:func:`random_brain_mr` and :func:`random_mammography` draw every family per seed;
:func:`random_chest_ct` does the same for the chest CT (kernels, HU offsets, pixel conventions,
slice thickness, FOV and matrix, anatomy, nodule kinds/margins/attachments, vessel trees).

Command line: ``python -m dicomnode.synthetic {ct,mr,brats,mg} --seed N --out DIR``.
"""

from dicomnode.synthetic.common import synthetic_uid, write_study
from dicomnode.synthetic.ct import (
    CT_IMAGE_STORAGE,
    ChestCT,
    NoduleMix,
    NoduleSpec,
    PixelConvention,
    ReconKernel,
    chest_ct,
)
from dicomnode.synthetic.mg import (
    MG_FOR_PRESENTATION_STORAGE,
    BreastTexture,
    Mammogram,
    MammoVariation,
    MassShape,
    mammography,
)
from dicomnode.synthetic.mr import (
    MR_IMAGE_STORAGE,
    BrainAnatomy,
    BrainMR,
    BrainTissue,
    FlairVariation,
    LesionPlacement,
    MRSequence,
    Orientation,
    brain_mr,
    brats_study,
)
from dicomnode.synthetic.random_mg import MammographyDraw, draw_mammography, random_mammography
from dicomnode.synthetic.random_mr import (
    BrainMRDraw,
    draw_brain_anatomy,
    draw_brain_mr,
    random_brain_mr,
)
from dicomnode.synthetic.randomize import ChestCTDraw, draw_chest_ct, random_chest_ct
from dicomnode.synthetic.truth import (
    DensityClass,
    Laterality,
    Lesion,
    MammoTruth,
    Mass,
    Nodule,
    NoduleAttachment,
    NoduleKind,
    NoduleMargin,
    PixelPoint,
    Projection,
    View,
    VolumeGeometry,
)

__all__ = [
    "CT_IMAGE_STORAGE",
    "MG_FOR_PRESENTATION_STORAGE",
    "MR_IMAGE_STORAGE",
    "BrainAnatomy",
    "BrainMR",
    "BrainMRDraw",
    "BrainTissue",
    "BreastTexture",
    "ChestCT",
    "ChestCTDraw",
    "DensityClass",
    "FlairVariation",
    "Laterality",
    "Lesion",
    "LesionPlacement",
    "MRSequence",
    "MammoTruth",
    "MammoVariation",
    "Mammogram",
    "MammographyDraw",
    "Mass",
    "MassShape",
    "Nodule",
    "NoduleAttachment",
    "NoduleKind",
    "NoduleMargin",
    "NoduleMix",
    "NoduleSpec",
    "Orientation",
    "PixelConvention",
    "PixelPoint",
    "ReconKernel",
    "Projection",
    "View",
    "VolumeGeometry",
    "brain_mr",
    "brats_study",
    "chest_ct",
    "draw_chest_ct",
    "draw_brain_anatomy",
    "draw_brain_mr",
    "draw_mammography",
    "mammography",
    "random_chest_ct",
    "random_brain_mr",
    "random_mammography",
    "synthetic_uid",
    "write_study",
]
