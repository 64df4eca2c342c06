"""Train the demo 3D UNet of ``models/brain_flair_segmentation`` on synthetic FLAIR MR."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceFocalLoss
from scipy import ndimage

from dicomnode.pipeline.bundle import load_bundle
from dicomnode.synthetic import BrainTissue, FlairVariation, brain_mr
from dicomnode.synthetic.common import rng_for
from dicomnode.synthetic.random_mr import draw_brain_anatomy, random_brain_mr
from models.training.common import (
    FINE_TUNE_LR,
    TRAIN_SEED_BASE,
    Budget,
    LossLog,
    finish,
    make_pool,
    start_from,
    training_device,
)
from pipelines.brain_lesion.model import prepare
from pipelines.common.dicomio import volume_from_datasets
from pipelines.common.grid import WorkingGrid, resize

log = logging.getLogger(__name__)

_PLAIN_SHAPES = ((128, 128, 64), (160, 160, 80), (192, 192, 96))

#: Voxel cap of a generated study (the draw thickens slices above it); bounds generation time.
MAX_VOXELS = 3_000_000
#: Share of patches centred on a lesion, on fat (hard negatives: bright, not lesions) and on
#: white matter (hard negatives: its brighter regions, of a faint lesion's contrast, are normal).
#: White matter was 0.15 (lesions 0.55) until bundle 0.6.0: with faint lesions taught as well,
#: the smaller share found more phantom lesions with fewer false ones (``models/FIGURES.md``).
LESION_PATCHES, FAT_PATCHES, WHITE_PATCHES = 0.65, 0.15, 0.05
#: Every how many white-matter voxels one is kept as a patch centre (bounds the memory).
_WHITE_STRIDE = 37
#: Share of lesion patches whose lesions are faded toward the tissue around them, the faintest
#: contrast (lesion mean over the median of that tissue, minus 1) a fade may leave, and the
#: width of the shell of tissue around the lesions it is measured on (voxels).
FADE_SHARE, FAINTEST, RING = 0.5, 0.08, 3
#: Share of patches seen through a thicker slice, and the slice thicknesses drawn (mm).
THICK_SHARE, THICKNESS_MM = 0.5, (1.5, 6.0)


@dataclass
class Case:
    """One FLAIR study in the working grid with its lesion mask, fat and white-matter voxels."""

    image: torch.Tensor
    label: torch.Tensor
    fat: torch.Tensor
    white: torch.Tensor
    lesions: tuple[torch.Tensor, ...]


def _to_working(grid: WorkingGrid, mask: np.ndarray) -> torch.Tensor:
    """A source-grid mask resampled onto the working grid (boolean ``[X, Y, Z]``)."""
    canonical = grid.canonical_from_source(mask.astype(np.float32))
    return resize(torch.from_numpy(np.ascontiguousarray(canonical)), grid.shape) > 0.5


def make_case(seed: int, bundle_path: Path) -> Case:
    """Generate a FLAIR study and prepare it through the pipeline's reader: odd seeds
    domain-randomised, even seeds the plain generator with conspicuous lesions (on randomised
    data alone the network sat at "all background" for the whole CPU budget); both with an
    anatomy drawn per study (:func:`draw_brain_anatomy`), so that the network does not learn
    one brain's shape as the context of a lesion."""
    bundle = load_bundle(bundle_path)
    if seed % 2:
        mr = random_brain_mr(seed, max_voxels=MAX_VOXELS)
    else:
        rng = np.random.default_rng(seed)
        mr = brain_mr(
            seed,
            shape=_PLAIN_SHAPES[int(rng.integers(len(_PLAIN_SHAPES)))],
            n_lesions=int(rng.integers(1, 6)),
            radius_range_mm=(2.5, 9.0),
            noise=float(rng.uniform(6, 20)),
            variation=FlairVariation(anatomy=draw_brain_anatomy(rng_for(seed, "train", "anatomy"))),
        )
    series = next(iter(mr.series.values()))
    volume = volume_from_datasets(series)
    image, grid = prepare([volume], bundle)
    # The generator's masks follow its datasets' order; the volume sorts slices along the
    # normal. Without this, every series stored in reverse order (30 % of the randomised
    # studies) was trained on labels flipped head to foot, and the network learnt nothing.
    order = mr.slice_order(volume.geometry.sop_instance_uids)
    label = _to_working(grid, mr.lesion_mask[order])
    fat = torch.nonzero(_to_working(grid, (mr.tissue == BrainTissue.FAT)[order]))
    white = _to_working(grid, (mr.tissue == BrainTissue.WHITE_MATTER)[order])
    centres = torch.nonzero(white)[::_WHITE_STRIDE].clone()
    return Case(
        image=image,
        label=label[None].float(),
        fat=fat,
        white=centres,
        lesions=lesion_voxels(label.numpy()),
    )


def lesion_voxels(label: np.ndarray) -> tuple[torch.Tensor, ...]:
    """The voxel indices (``(n, 3)``) of each connected lesion of a boolean ``[X, Y, Z]`` mask."""
    components, _ = ndimage.label(label, np.ones((3, 3, 3), bool))
    indices = ndimage.value_indices(components, ignore_value=0)
    return tuple(torch.from_numpy(np.stack(indices[n], axis=1)) for n in sorted(indices))


def _patch(case: Case, size: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    shape = np.asarray(case.image.shape[1:])
    draw = rng.random()
    if case.lesions and draw < LESION_PATCHES:
        # A lesion drawn uniformly, then one of its voxels: a 3 mm lesion is centred as often
        # as a confluent one (drawn by voxel, the large lesions took nearly every patch).
        lesion = case.lesions[int(rng.integers(len(case.lesions)))]
        centre = lesion[int(rng.integers(len(lesion)))].numpy()
        start = centre - size // 2 + rng.integers(-size // 4, size // 4 + 1)
    elif len(case.fat) and draw < LESION_PATCHES + FAT_PATCHES:
        centre = case.fat[int(rng.integers(len(case.fat)))].numpy()
        start = centre - size // 2 + rng.integers(-size // 4, size // 4 + 1)
    elif len(case.white) and draw < LESION_PATCHES + FAT_PATCHES + WHITE_PATCHES:
        centre = case.white[int(rng.integers(len(case.white)))].numpy()
        start = centre - size // 2 + rng.integers(-size // 4, size // 4 + 1)
    else:
        start = np.asarray(
            [int(rng.integers(0, max(1, s - p + 1))) for s, p in zip(shape, size, strict=True)]
        )
    start = np.clip(start, 0, np.maximum(shape - size, 0))
    stop = start + size
    out = []
    for array in (case.image, case.label):
        part = array[:, start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]
        pad = [int(v) for v in np.maximum(size - np.asarray(part.shape[1:]), 0)]
        if any(pad):
            part = torch.nn.functional.pad(part, (0, pad[2], 0, pad[1], 0, pad[0]))
        out.append(part)
    return tuple(out)


def fade_lesions(
    image: torch.Tensor, label: torch.Tensor, rng: np.random.Generator
) -> torch.Tensor:
    """The patch with its lesions' contrast over the tissue around them scaled down at random.

    FLAIR lesions range from barely above white matter to several times brighter, and the
    generators draw few faint ones. Blending each labelled voxel toward the median of the brain
    in a shell :data:`RING` voxels wide around the lesions (soft just outside them) keeps the
    lesion's shape and texture and gives the network faint versions of every lesion, small ones
    too; the contrast left is drawn between :data:`FAINTEST` and the original. The shell, not
    the whole patch (its median includes dark CSF and bright cortex), is what a reader compares
    a lesion with. Patches without lesions, or lesions already at most that faint, are
    unchanged.
    """
    inside = label[0] > 0.5
    if not inside.any():
        return image
    grown = torch.nn.functional.max_pool3d(label[None], 2 * RING + 1, stride=1, padding=RING)[0, 0]
    shell = (grown > 0.5) & ~inside & (image[0] > 0.02)
    if int(shell.sum()) < 20:
        return image
    background = float(image[0][shell].median())
    contrast = float(image[0][inside].mean()) / max(background, 1e-3) - 1.0
    if contrast <= FAINTEST:
        return image
    scale = float(rng.uniform(FAINTEST, contrast)) / contrast
    # Whole inside (a small lesion is mostly edge), soft just outside it.
    weight = torch.maximum(label, torch.nn.functional.avg_pool3d(label[None], 3, 1, 1)[0])
    excess = (image - background).clamp(min=0.0)
    return image - (1.0 - scale) * excess * weight


def slice_profile(thickness_mm: float, voxel_mm: float) -> np.ndarray:
    """Weights of a rectangular slice profile ``thickness_mm`` wide on voxels of ``voxel_mm``:
    each voxel's overlap with the slab, summing to 1."""
    reach = int(np.ceil(thickness_mm / voxel_mm / 2.0 - 0.5))
    centres = np.arange(-reach, reach + 1) * voxel_mm
    low = np.maximum(centres - voxel_mm / 2, -thickness_mm / 2)
    high = np.minimum(centres + voxel_mm / 2, thickness_mm / 2)
    weights = np.clip(high - low, 0.0, None)
    return weights / weights.sum()


def thicken_slices(image: torch.Tensor, rng: np.random.Generator, voxel_mm: float) -> torch.Tensor:
    """The patch as a thicker 2-D slice would show it: averaged along one axis over a slab.

    A 2-D FLAIR slice integrates the signal over its thickness (3-6 mm clinically): a lesion
    smaller than the slab keeps its extent in the slice but loses contrast to the tissue around
    it (partial volume). The studies' own slices are drawn without a slab profile (each slice
    is sampled at its centre), so a small lesion keeps its full contrast however thick the
    slices. Here the brain (input 0 outside it) is averaged along a random axis (the slice
    direction is unknown on the working grid) over a slab drawn from :data:`THICKNESS_MM`.
    """
    kernel = slice_profile(float(rng.uniform(*THICKNESS_MM)), voxel_mm)
    if kernel.size == 1:
        return image
    axis = int(rng.integers(1, image.ndim))
    shape = [1] * image.ndim
    shape[axis] = kernel.size
    weights = torch.from_numpy(kernel.astype(np.float32)).reshape(shape[1:])[None, None]
    brain = (image != 0).float()
    padding = [0, 0, 0]
    padding[axis - 1] = kernel.size // 2
    total = torch.nn.functional.conv3d(image[None], weights, padding=padding)[0]
    share = torch.nn.functional.conv3d(brain[None], weights, padding=padding)[0]
    return torch.where(brain > 0, total / share.clamp(min=1e-3), image)


def mirror(
    image: torch.Tensor, label: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch and its label mirrored along each axis with probability 1/2.

    The pipeline averages the network over the 8 mirror images of the brain (test-time
    mirroring, as nnU-Net does); trained on mirrored patches, the network knows each of them.
    """
    dims = [axis for axis in (1, 2, 3) if rng.random() < 0.5]
    if not dims:
        return image, label
    return torch.flip(image, dims), torch.flip(label, dims)


def train(
    bundle_path: Path,
    minutes: float,
    steps: int | None = None,
    cases: int = 48,
    batch: int = 4,
    init: Path | None = None,
    processes: int = 1,
) -> dict:
    """Train for ``minutes`` of wall time (or ``steps``); returns what to record in the metadata.

    ``init``: weights to start from (a fine-tune) instead of a random initialisation.
    ``processes``: worker processes that make the studies. Trains on the GPU when there is one.
    """
    started = time.monotonic()
    bundle = load_bundle(bundle_path)
    base = TRAIN_SEED_BASE["brain"]
    pool = make_pool(make_case, [base + i for i in range(cases)], bundle_path, processes)
    log.info("brain: %d cases prepared in %.0f s", cases, time.monotonic() - started)
    network = bundle.build("network_def")
    started_from = start_from(network, init, "brain")
    device = training_device()
    network.to(device).train()
    loss_fn = DiceFocalLoss(sigmoid=True, batch=True, smooth_nr=1e-4, smooth_dr=1e-4)
    optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=1e-5)
    budget = Budget(minutes * 60, lr=1.5e-3 if init is None else FINE_TUNE_LR, steps=steps)
    size = np.asarray(bundle.get("train_patch_size", [64, 64, 64]))
    voxel = float(min((bundle.transform_args("Spacingd") or {}).get("pixdim", [1.5])))
    rng = np.random.default_rng(base)
    history = LossLog("brain")
    while not budget.done:
        items = [_patch(pool[int(rng.integers(len(pool)))], size, rng) for _ in range(batch)]
        items = [
            (fade_lesions(i, lab, rng) if rng.random() < FADE_SHARE else i, lab) for i, lab in items
        ]
        items = [
            (thicken_slices(i, rng, voxel) if rng.random() < THICK_SHARE else i, lab)
            for i, lab in items
        ]
        items = [mirror(i, lab, rng) for i, lab in items]
        image = torch.stack([i for i, _ in items])
        label = torch.stack([lab for _, lab in items])
        if rng.random() < 0.5:
            image = image * float(rng.uniform(0.9, 1.1)) + float(rng.normal(0, 0.05))
        loss = loss_fn(network(image.to(device)), label.to(device))
        budget.step(optimizer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.add(float(loss.detach()), budget)
    return finish(
        "brain",
        bundle_path,
        network,
        history,
        started=started,
        seeds=f"{base}..{base + cases - 1}",
        batch=batch,
        init=started_from,
        device=device.type,
        patch=size.tolist(),
    )
