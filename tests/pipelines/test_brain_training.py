"""The brain trainer's patch augmentations (``models/training/brain.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.training.brain import FAINTEST, fade_lesions, mirror, slice_profile, thicken_slices


@pytest.mark.parametrize("thickness", [1.5, 2.0, 3.0, 4.5, 6.0])
def test_slice_profile_covers_the_slab(thickness: float) -> None:
    weights = slice_profile(thickness, 1.5)
    assert weights.sum() == pytest.approx(1.0)
    assert np.allclose(weights, weights[::-1])
    # Each voxel wholly inside the slab weighs voxel / thickness; the slab is covered.
    assert weights.max() == pytest.approx(min(1.0, 1.5 / thickness))
    assert thickness <= weights.size * 1.5 < thickness + 3.0


def test_thicker_slices_fade_a_small_lesion_not_the_brain() -> None:
    image = torch.zeros(1, 24, 24, 24)
    image[0, 2:22, 2:22, 2:22] = 0.7  # brain; 0 outside, as the pipeline's input
    image[0, 11:13, 11:13, 11:13] = 1.4  # a 3 mm lesion, twice the brain
    seen = [thicken_slices(image, np.random.default_rng(seed), 1.5) for seed in range(8)]
    for out in seen:
        assert torch.all(out[image == 0] == 0)
        assert torch.allclose(out[0, 4:8, 4:8, 4:8], image[0, 4:8, 4:8, 4:8])
        assert float(out[0, 2, 2, 2]) == pytest.approx(0.7)  # the brain's edge keeps its level
        assert float(out[0, 11:13, 11:13, 11:13].mean()) <= 1.4 + 1e-6
    assert min(float(out[0, 11:13, 11:13, 11:13].mean()) for out in seen) < 1.2


def test_a_fine_tune_starts_from_the_given_weights_and_records_their_sha256(tmp_path) -> None:
    import torch

    from dicomnode.pipeline.bundle import file_sha256
    from models.training.common import start_from

    source, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    path = tmp_path / "init.pt"
    torch.save(source.state_dict(), path)
    assert start_from(target, None, "brain") is None
    assert not torch.equal(source.weight, target.weight)
    record = start_from(target, path, "brain")
    assert torch.equal(source.weight, target.weight)
    assert record == f"weights with sha256 {file_sha256(path)}"


def test_a_fine_tune_into_batch_norm_keeps_every_convolution_and_refuses_a_misfit(
    tmp_path,
) -> None:
    """Instance-norm weights (no norm state) load into the same network with batch norm: the
    convolutions carry over, the norms start fresh; weights of another network are refused."""
    from monai.networks.nets import UNet

    from models.training.common import start_from

    def unet(norm: str) -> torch.nn.Module:
        return UNet(3, 1, 1, (4, 8), (2,), num_res_units=1, norm=norm)

    source, target = unet("instance"), unet("batch")
    path = tmp_path / "instance.pt"
    torch.save(source.state_dict(), path)
    start_from(target, path, "brain")
    convolutions = {k: v for k, v in source.state_dict().items() if ".adn." not in k}
    assert convolutions and all(
        torch.equal(value, target.state_dict()[key]) for key, value in convolutions.items()
    )
    other = tmp_path / "other.pt"
    torch.save(UNet(3, 1, 1, (4, 8, 16), (2, 2), num_res_units=1).state_dict(), other)
    with pytest.raises(ValueError, match="does not fit"):
        start_from(unet("batch"), other, "brain")


def test_mirrored_patches_keep_their_labels_and_cover_every_mirror() -> None:
    image = torch.zeros((1, 8, 10, 12))
    image[0, 1:3, 2:4, 3:6] = 1.0
    label = (image > 0.5).float()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(64):
        flipped, flipped_label = mirror(image, label, rng)
        assert torch.equal(flipped_label, (flipped > 0.5).float())
        assert flipped.shape == image.shape
        seen.add(tuple(int(v) for v in torch.nonzero(flipped[0])[0]))
    assert len(seen) == 8  # the lesion's first voxel in each of the 8 mirror images


def _faded_contrasts(image: torch.Tensor, label: torch.Tensor, around: float) -> list[float]:
    """Mean contrast of the lesion over ``around`` after each of 32 fades."""
    inside = label[0] > 0.5
    out = [fade_lesions(image, label, np.random.default_rng(seed)) for seed in range(32)]
    for faded in out:  # far from the lesion, nothing changes
        assert torch.equal(faded[0, :2], image[0, :2])
    return [float(faded[0][inside].mean()) / around - 1.0 for faded in out]


def test_faded_lesions_stay_above_the_tissue_around_them() -> None:
    # A periventricular patch: most of the brain in it is dark CSF (0.2), the lesion (twice
    # white matter) sits in white matter (0.5). Faded against the patch's median, the CSF,
    # the lesion ended darker than the white matter it lies in, its label kept.
    image = torch.full((1, 32, 32, 32), 0.2)
    image[0, :, :, 16:] = 0.5
    image[0, 12:20, 12:20, 20:28] = 1.0
    contrasts = _faded_contrasts(image, (image > 0.75).float(), 0.5)
    assert min(contrasts) >= FAINTEST - 1e-4
    assert min(contrasts) < FAINTEST + 0.1  # faint versions are drawn
    assert max(contrasts) > 0.6  # and strong ones


def test_small_lesions_are_faded_too() -> None:
    # A 3 mm lesion is all edge: faded with a soft (3x3x3 average) weight it kept most of its
    # contrast, and the faint small lesions the phantoms miss were never shown.
    image = torch.full((1, 24, 24, 24), 0.5)
    image[0, 11:13, 11:13, 11:13] = 1.0
    contrasts = _faded_contrasts(image, (image > 0.75).float(), 0.5)
    assert FAINTEST - 1e-4 <= min(contrasts) < FAINTEST + 0.1


def test_lesion_patches_centre_small_lesions_as_often_as_large_ones() -> None:
    from models.training.brain import LESION_PATCHES, Case, _patch, lesion_voxels

    label = np.zeros((96, 96, 96), bool)
    label[4:28, 4:28, 4:28] = True  # a confluent lesion of 13824 voxels
    label[80:82, 80:82, 80:82] = True  # a 3 mm lesion of 8 voxels
    lesions = lesion_voxels(label)
    assert sorted(len(v) for v in lesions) == [8, 13824]
    case = Case(
        image=torch.zeros(1, *label.shape),
        label=torch.from_numpy(label)[None].float(),
        fat=torch.zeros(0, 3, dtype=torch.long),
        white=torch.zeros(0, 3, dtype=torch.long),
        lesions=lesions,
    )
    rng = np.random.default_rng(5)
    patches = [_patch(case, np.array([24, 24, 24]), rng)[1] for _ in range(400)]
    small = sum(int(p.sum()) == 8 for p in patches) / len(patches)
    large = sum(int(p.sum()) > 8 for p in patches) / len(patches)
    # Each lesion takes about half of the lesion patches (the rest are drawn at random).
    assert small > 0.35 * LESION_PATCHES
    assert large > 0.35 * LESION_PATCHES


def test_studies_made_in_worker_processes_equal_those_made_here() -> None:
    from models.train import BUNDLES
    from models.training.brain import make_case
    from models.training.common import make_pool

    pooled = make_pool(make_case, [11, 12], BUNDLES["brain"], processes=2)
    here = make_case(12, BUNDLES["brain"])
    assert len(pooled) == 2
    for name in ("image", "label", "fat", "white"):
        assert torch.equal(getattr(pooled[1], name), getattr(here, name)), name
    assert len(pooled[1].lesions) == len(here.lesions) > 0
    assert all(torch.equal(a, b) for a, b in zip(pooled[1].lesions, here.lesions, strict=True))
    assert not torch.equal(pooled[0].image, here.image)  # each seed its own study
