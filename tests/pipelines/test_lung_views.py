"""Test-time mirroring of the lung detector: the views' boxes flipped back and fused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.lung_nodule.model import VIEWS, fuse_views, mirrored_detections

SPACING = (1.25, 1.25, 2.5)


def _box(centre: tuple[float, float, float], size: float) -> np.ndarray:
    c = np.asarray(centre, float)
    half = np.asarray([size, size, size / 2]) / 2
    return np.concatenate([c - half, c + half])


def test_one_finding_seen_in_every_view_keeps_its_score() -> None:
    runs = [
        (np.stack([_box((20.0 + shift, 30.0, 10.0), 8.0)]), np.asarray([0.9]))
        for shift in (0.0, 0.4, -0.4, 0.8)
    ]
    boxes, scores = fuse_views(runs, SPACING)
    assert boxes.shape == (1, 6)
    assert scores[0] == pytest.approx(0.9)
    assert (boxes[0, 0] + boxes[0, 3]) / 2 == pytest.approx(20.2, abs=1e-6)


def test_a_box_seen_in_one_view_scores_its_share() -> None:
    nodule = _box((20.0, 30.0, 10.0), 8.0)
    stray = _box((60.0, 30.0, 10.0), 6.0)
    runs = [(np.stack([nodule, stray]), np.asarray([0.8, 0.99]))] + [
        (np.stack([nodule]), np.asarray([0.8]))
    ] * 3
    boxes, scores = fuse_views(runs, SPACING)
    by_x = dict(zip(np.round((boxes[:, 0] + boxes[:, 3]) / 2), scores, strict=True))
    assert by_x == {20.0: pytest.approx(0.8), 60.0: pytest.approx(0.99 / 4)}


def test_neighbours_further_apart_than_their_size_stay_apart() -> None:
    runs = [(np.stack([_box((20.0, 30.0, 10.0), 4.0), _box((25.0, 30.0, 10.0), 4.0)]), np.ones(2))]
    boxes, scores = fuse_views(runs * 2, SPACING)
    assert len(boxes) == 2
    assert np.allclose(scores, 1.0)


def test_no_detection_in_any_view() -> None:
    empty = (np.zeros((0, 6)), np.zeros(0))
    boxes, scores = fuse_views([empty] * 4, SPACING)
    assert boxes.shape == (0, 6)
    assert scores.shape == (0,)


class _Bright:
    """A detector of the image's brightest voxel (a 4-voxel box around it): not the RetinaNet,
    but the same call convention, so the views' flips can be checked exactly."""

    def __call__(self, images: list[torch.Tensor], use_inferer: bool) -> list[dict]:
        image = images[0][0]
        index = np.unravel_index(int(torch.argmax(image)), tuple(image.shape))
        low = np.asarray(index, float) - 2.0
        return [{"box": torch.tensor([[*low, *(low + 4.0)]]), "label_scores": torch.tensor([0.7])}]


def test_every_view_is_flipped_back_onto_the_finding() -> None:
    image = torch.zeros(1, 40, 30, 20)
    image[0, 7, 21, 4] = 1.0
    boxes, scores = mirrored_detections(_Bright(), image, SPACING, use_inferer=False)  # type: ignore[arg-type]
    assert len(VIEWS) == 4
    assert boxes.shape == (1, 6)
    assert scores[0] == pytest.approx(0.7)
    # Boxes in voxel-centre coordinates (voxel c at c, as the trainer's): every view, flipped
    # back, agrees with the first on the centre c.
    centre = (boxes[0, :3] + boxes[0, 3:]) / 2
    assert np.allclose(centre, [7, 21, 4], atol=1e-5)
    single, _ = mirrored_detections(_Bright(), image, SPACING, use_inferer=False, mirror=False)  # type: ignore[arg-type]
    assert np.allclose((single[0, :3] + single[0, 3:]) / 2, [7, 21, 4])
