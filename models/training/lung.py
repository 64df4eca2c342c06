"""Train the demo RetinaNet of ``models/lung_nodule_ct_detection`` on synthetic chest CTs.

The CTs come from :func:`dicomnode.synthetic.randomize.random_chest_ct`: every scanner, anatomy
and nodule family is drawn per study, with vessel trees and airways as distractors. A quarter of
the patches are hard negatives: a third of them on the hilar trunks (the large central arteries
and veins), the rest on vessel bifurcations and on airways (bronchial rings, the carina).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dicomnode.pipeline.bundle import load_bundle
from dicomnode.synthetic import ChestCT, Nodule, NoduleAttachment, NoduleKind
from dicomnode.synthetic._ct_shapes import CENTRAL_VESSEL_MM
from dicomnode.synthetic.randomize import draw_chest_ct, random_chest_ct
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
from pipelines.common.dicomio import volume_from_datasets
from pipelines.lung_nodule.model import build_detector, prepare

log = logging.getLogger(__name__)

_VESSEL_HU = -200
_PATCH_KINDS = ("positive", "positive", "vessel", "random")
_CENTRAL_SHARE = 1 / 3
"""Share of the hard-negative patches centred on a hilar trunk (a few points per CT among
hundreds of bifurcations and airways)."""


@dataclass
class Case:
    """One training CT in the working grid.

    Attributes
    ----------
    image : torch.Tensor
        ``[1, X, Y, Z]`` as the pipeline prepares it.
    boxes : numpy.ndarray
        Nodule boxes (xyzxyz, working voxels).
    vessels : numpy.ndarray
        ``(n, 3)`` vessel ends and airways (working voxels): hard-negative centres.
    central : numpy.ndarray
        ``(m, 3)`` points along the hilar trunks inside the lungs (working voxels).
    weights : numpy.ndarray
        ``(n,)`` how often each nodule is the centre of a positive patch (:func:`nodule_weight`).
    """

    image: torch.Tensor
    boxes: np.ndarray
    vessels: np.ndarray
    central: np.ndarray
    weights: np.ndarray


def nodule_weight(nodule: Nodule) -> float:
    """Relative share of the positive patches centred on ``nodule``: ground glass 3x, part-solid
    2x, beside a vessel 2x, under 8 mm 2x (multiplied): the kinds the detector misses on its own
    draw (``models/FIGURES.md``, fifteenth session) are a small part of the pool."""
    weight = {NoduleKind.GROUND_GLASS: 3.0, NoduleKind.PART_SOLID: 2.0}.get(nodule.kind, 1.0)
    if nodule.attachment is NoduleAttachment.VESSEL:
        weight *= 2.0
    if nodule.diameter_mm < 8.0:
        weight *= 2.0
    return weight


def make_case(seed: int, bundle_path: Path) -> Case:
    """Generate a randomised CT, load it through the pipeline's own reader and prepare it."""
    bundle = load_bundle(bundle_path)
    ct = random_chest_ct(seed)
    log.debug("lung: seed %d %s", seed, draw_chest_ct(seed))
    image, grid = prepare(volume_from_datasets(ct.datasets), bundle)
    centres = grid.from_patient(np.asarray([n.centre_mm for n in ct.nodules]))
    radii = np.asarray([[n.diameter_mm / 2] for n in ct.nodules]) / np.asarray(grid.spacing)
    boxes = np.concatenate([centres - radii, centres + radii], axis=1)
    branch_points = _distractors_in_lung(ct)
    vessels = grid.from_patient(branch_points) if len(branch_points) else np.zeros((0, 3))
    trunk_points = _central_in_lung(ct)
    central = grid.from_patient(trunk_points) if len(trunk_points) else np.zeros((0, 3))
    weights = np.asarray([nodule_weight(n) for n in ct.nodules], float)
    return Case(
        image=image,
        boxes=boxes.astype(np.float32),
        vessels=vessels,
        central=central,
        weights=weights,
    )


def _distractors_in_lung(ct: ChestCT) -> np.ndarray:
    """Hard-negative centres in the image: vessel ends on a painted vessel (HU above the
    lung's) and the ends and middles of the airways (bronchial rings, the carina)."""
    points = [tube.end for tube in ct.vessels if _painted(ct, tube.end, _VESSEL_HU)]
    for airway in ct.airways:
        start, end = np.asarray(airway.lumen.start), np.asarray(airway.lumen.end)
        for point in (start, (start + end) / 2, end):
            if _painted(ct, point, None):
                points.append(tuple(point))
    return np.asarray(points, float).reshape(-1, 3)


def _central_in_lung(ct: ChestCT) -> np.ndarray:
    """Points at a quarter, half, three quarters and the end of every hilar trunk that lie on
    a painted vessel (the part inside the lungs)."""
    points = []
    for tube in ct.vessels:
        if tube.start_radius_mm < CENTRAL_VESSEL_MM:
            continue
        start, end = np.asarray(tube.start), np.asarray(tube.end)
        for t in (0.25, 0.5, 0.75, 1.0):
            point = tuple(start + t * (end - start))
            if _painted(ct, point, _VESSEL_HU):
                points.append(point)
    return np.asarray(points, float).reshape(-1, 3)


def _painted(ct: ChestCT, point, above_hu: float | None) -> bool:
    """Whether ``point`` (patient mm) lies in the image (and above ``above_hu`` there)."""
    i, j, k = (round(v) for v in ct.geometry.patient_to_index(*point))
    inside = all(0 <= a < n for a, n in zip((k, j, i), ct.volume.shape, strict=True))
    return inside and (above_hu is None or bool(ct.volume[k, j, i] > above_hu))


def _patch(
    case: Case, size: np.ndarray, rng: np.random.Generator, kind: str, nodule: int = 0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A training patch: ``kind`` is "positive" (around nodule ``nodule``), "vessel" or
    "random"."""
    shape = np.asarray(case.image.shape[1:])
    if kind == "positive" and len(case.boxes):
        box = case.boxes[nodule]
        centre = (box[:3] + box[3:]) / 2 + rng.uniform(-0.35, 0.35, 3) * size
        start = np.round(centre - size / 2).astype(int)
    elif kind == "vessel" and len(case.vessels):
        central = len(case.central) and rng.random() < _CENTRAL_SHARE
        points = case.central if central else case.vessels
        centre = points[int(rng.integers(len(points)))] + rng.uniform(-0.2, 0.2, 3) * size
        start = np.round(centre - size / 2).astype(int)
    else:
        start = np.asarray(
            [int(rng.integers(0, max(1, s - p + 1))) for s, p in zip(shape, size, strict=True)]
        )
    start = np.clip(start, 0, np.maximum(shape - size, 0))
    stop = start + size
    image = case.image[:, start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]
    pad = [int(v) for v in np.maximum(size - np.asarray(image.shape[1:]), 0)]
    if any(pad):
        image = torch.nn.functional.pad(image, (0, pad[2], 0, pad[1], 0, pad[0]))
    boxes = case.boxes.copy()
    boxes[:, :3] -= start
    boxes[:, 3:] -= start
    centres = (boxes[:, :3] + boxes[:, 3:]) / 2
    inside = np.all((centres >= 0) & (centres < size), axis=1)
    boxes = np.clip(boxes[inside], -0.5, np.concatenate([size, size]) - 0.5)  # voxel centres
    image, boxes = _augment(image, boxes, size, rng)
    target = {
        "box": torch.from_numpy(boxes.astype(np.float32)).reshape(-1, 6),
        "label": torch.zeros(len(boxes), dtype=torch.long),
    }
    return image, target


def _augment(
    image: torch.Tensor, boxes: np.ndarray, size: np.ndarray, rng: np.random.Generator
) -> tuple[torch.Tensor, np.ndarray]:
    """Mirror a patch along each axis (each with probability 1/2) and swap its two in-plane
    axes (1/2), its boxes with it: a nodule looks the same from any side, and a pool of a few
    dozen CTs then shows each nodule and vessel in sixteen poses."""
    boxes = boxes.copy()
    for axis in range(3):
        if rng.random() < 0.5:
            image = torch.flip(image, dims=(axis + 1,))
            low, high = boxes[:, axis].copy(), boxes[:, axis + 3].copy()
            # voxel-centre coordinates (the boxes come from grid.from_patient): x -> size - 1 - x
            boxes[:, axis], boxes[:, axis + 3] = size[axis] - 1 - high, size[axis] - 1 - low
    if size[0] == size[1] and rng.random() < 0.5:
        image = image.transpose(1, 2)
        boxes = boxes[:, [1, 0, 2, 4, 3, 5]]
    return image.contiguous(), boxes


def train(
    bundle_path: Path,
    minutes: float,
    steps: int | None = None,
    cases: int = 112,
    batch: int = 4,
    init: Path | None = None,
    processes: int = 1,
) -> dict:
    """Train for ``minutes`` of wall time (or ``steps``); returns what to record in the metadata.

    ``init``: weights to start from (a fine-tune, at a quarter of the learning rate) instead of
    a random initialisation. ``processes``: worker processes that make the CTs. Trains on the
    GPU when there is one.
    """
    started = time.monotonic()
    bundle = load_bundle(bundle_path)
    base = TRAIN_SEED_BASE["lung"]
    pool = make_pool(make_case, [base + i for i in range(cases)], bundle_path, processes)
    prepared = time.monotonic() - started
    log.info("lung: %d randomised cases prepared in %.0f s", cases, prepared)
    network = bundle.build("network_def")
    started_from = start_from(network, init, "lung")
    device = training_device()
    detector = build_detector(bundle, device.type, network=network.to(device))
    detector.set_atss_matcher(num_candidates=4, center_in_gt=False)
    detector.set_hard_negative_sampler(
        batch_size_per_image=128, positive_fraction=0.3, pool_size=20, min_neg=16
    )
    detector.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=1e-4)
    budget = Budget(minutes * 60, lr=2e-3 if init is None else FINE_TUNE_LR, steps=steps)
    size = np.asarray(bundle.get("train_patch_size", [96, 96, 48]))
    rng = np.random.default_rng(base)
    history = LossLog("lung")
    nodules = [(c, n) for c, case in enumerate(pool) for n in range(len(case.boxes))]
    shares = np.asarray([pool[c].weights[n] for c, n in nodules])
    shares /= shares.sum()
    while not budget.done:
        items = []
        for i in range(batch):
            kind = _PATCH_KINDS[i % 4]
            if kind == "positive":
                c, n = nodules[int(rng.choice(len(nodules), p=shares))]
                items.append(_patch(pool[c], size, rng, kind, nodule=n))
            else:
                items.append(_patch(pool[int(rng.integers(len(pool)))], size, rng, kind))
        images = torch.stack([image for image, _ in items]).to(device)
        targets = [{k: v.to(device) for k, v in target.items()} for _, target in items]
        losses = detector(images, targets)
        loss = losses["classification"] + losses["box_regression"]
        budget.step(optimizer)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
        optimizer.step()
        history.add(float(loss.detach()), budget)
    return finish(
        "lung",
        bundle_path,
        network,
        history,
        started=started,
        seeds=f"{base}..{base + cases - 1}",
        data="dicomnode.synthetic.randomize.random_chest_ct",
        data_seconds=round(prepared, 1),
        batch=batch,
        patch=size.tolist(),
        init=started_from,
        device=device.type,
    )
