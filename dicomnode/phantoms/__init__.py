"""A second, independently written phantom family for evaluation (never used for training).

Generators of chest CT (:func:`chest_ct`), brain FLAIR MR (:func:`brain_flair`) and 4-view
mammography (:func:`mammography`) series with ground truth and distractors. Each is a pure
function of its seed: the same call gives byte-identical datasets, UIDs included. Written
without reference to :mod:`dicomnode.synthetic`, so that scores on these phantoms measure how
the pipelines generalise beyond the images they were trained on.
"""

from dicomnode.phantoms._dicom import phantom_uid, write
from dicomnode.phantoms.breast import MG_PRESENTATION_STORAGE, BreastTruth, MammoCase, mammography
from dicomnode.phantoms.chest import (
    CT_IMAGE_STORAGE,
    ChestCase,
    Distractor,
    NoduleKind,
    PhantomNodule,
    chest_ct,
)
from dicomnode.phantoms.head import (
    MR_IMAGE_STORAGE,
    BrainCase,
    PhantomLesion,
    brain_flair,
    truth_mask_for,
)

__all__ = [
    "CT_IMAGE_STORAGE",
    "MG_PRESENTATION_STORAGE",
    "MR_IMAGE_STORAGE",
    "BrainCase",
    "BreastTruth",
    "ChestCase",
    "Distractor",
    "MammoCase",
    "NoduleKind",
    "PhantomLesion",
    "PhantomNodule",
    "brain_flair",
    "chest_ct",
    "mammography",
    "phantom_uid",
    "truth_mask_for",
    "write",
]
