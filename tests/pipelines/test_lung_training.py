"""The lung trainer's patch augmentation and positive-patch shares (``models/training/lung.py``)."""

from __future__ import annotations

import numpy as np
import torch

from dicomnode.synthetic import Nodule, NoduleAttachment, NoduleKind
from models.training.lung import _augment, nodule_weight


def test_mirrored_and_transposed_patches_keep_their_boxes_on_the_nodule() -> None:
    size = np.asarray([64, 64, 32])
    image = torch.zeros(1, *size.tolist())
    image[0, 10:20, 28:34, 5:9] = 1.0  # an elongated "nodule": every flip and the swap show
    # voxel-centre coordinates, as the trainer's boxes (grid.from_patient): voxels 10..19 span
    # 9.5..19.5
    boxes = np.asarray([[9.5, 27.5, 4.5, 19.5, 33.5, 8.5]], float)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(64):
        out, moved = _augment(image, boxes, size, rng)
        assert out.shape == image.shape
        occupied = torch.nonzero(out[0])
        low, high = occupied.min(0).values.numpy(), occupied.max(0).values.numpy()
        assert np.array_equal(np.concatenate([low - 0.5, high + 0.5]), moved[0])
        seen.add(tuple(moved[0]))
    assert len(seen) == 16  # 8 mirror images x 2 in-plane orders
    assert np.array_equal(boxes, [[9.5, 27.5, 4.5, 19.5, 33.5, 8.5]])  # the caller's untouched


def _nodule(kind: NoduleKind, diameter: float, attachment: NoduleAttachment) -> Nodule:
    return Nodule(
        centre_mm=(0.0, 0.0, 0.0),
        diameter_mm=diameter,
        kind=kind,
        centre_index=(0.0, 0.0, 0.0),
        solid_diameter_mm=0.0 if kind is NoduleKind.GROUND_GLASS else diameter,
        attachment=attachment,
    )


def test_positive_patches_favour_the_kinds_the_detector_misses() -> None:
    solid = nodule_weight(_nodule(NoduleKind.SOLID, 12.0, NoduleAttachment.NONE))
    small_glass = nodule_weight(_nodule(NoduleKind.GROUND_GLASS, 6.0, NoduleAttachment.NONE))
    vascular = nodule_weight(_nodule(NoduleKind.SOLID, 12.0, NoduleAttachment.VESSEL))
    part_solid = nodule_weight(_nodule(NoduleKind.PART_SOLID, 12.0, NoduleAttachment.PLEURA))
    assert solid == 1.0
    assert small_glass == 6.0
    assert vascular == 2.0
    assert part_solid == 2.0
