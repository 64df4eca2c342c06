"""Train the demo RetinaNet of ``models/lung_nodule_ct_detection`` on synthetic chest CTs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dicomnode.pipeline.bundle import load_bundle
from dicomnode.synthetic import chest_ct
from models.training.common import TRAIN_SEED_BASE, Budget, LossLog, finish
from pipelines.common.dicomio import volume_from_datasets
from pipelines.lung_nodule.model import build_detector, prepare

log = logging.getLogger(__name__)

_SHAPES = ((256, 256, 96), (320, 320, 120), (384, 384, 140), (512, 512, 160))


@dataclass
class Case:
    """One training CT in the working grid, with its nodule boxes (xyzxyz, working voxels)."""

    image: torch.Tensor
    boxes: np.ndarray


def make_case(seed: int, bundle_path: Path) -> Case:
    """Generate, load (through the pipeline's own reader) and prepare one CT."""
    bundle = load_bundle(bundle_path)
    rng = np.random.default_rng(seed)
    shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
    ct = None
    for count in (4, 3, 2, 1):
        try:
            ct = chest_ct(
                seed,
                shape=shape,
                n_nodules=count,
                diameter_range_mm=(4.0, 26.0),
                noise_hu=float(rng.uniform(8, 25)),
            )
            break
        except ValueError:
            continue
    if ct is None:
        raise RuntimeError(f"could not place nodules for seed {seed}")
    image, grid = prepare(volume_from_datasets(ct.datasets), bundle)
    centres = grid.from_patient(np.asarray([n.centre_mm for n in ct.nodules]))
    radii = np.asarray([[n.diameter_mm / 2] for n in ct.nodules]) / np.asarray(grid.spacing)
    boxes = np.concatenate([centres - radii, centres + radii], axis=1)
    return Case(image=image, boxes=boxes.astype(np.float32))


def _patch(
    case: Case, size: np.ndarray, rng: np.random.Generator, positive: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    shape = np.asarray(case.image.shape[1:])
    if positive and len(case.boxes):
        box = case.boxes[int(rng.integers(len(case.boxes)))]
        centre = (box[:3] + box[3:]) / 2 + rng.uniform(-0.35, 0.35, 3) * size
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
    boxes = np.clip(boxes[inside], 0, np.concatenate([size, size]))
    target = {
        "box": torch.from_numpy(boxes.astype(np.float32)).reshape(-1, 6),
        "label": torch.zeros(len(boxes), dtype=torch.long),
    }
    return image, target


def train(bundle_path: Path, minutes: float, cases: int = 36, batch: int = 4) -> dict:
    """Train for ``minutes`` of wall time; returns what to record in the metadata."""
    started = time.monotonic()
    bundle = load_bundle(bundle_path)
    base = TRAIN_SEED_BASE["lung"]
    pool = [make_case(base + i, bundle_path) for i in range(cases)]
    log.info("lung: %d cases prepared in %.0f s", cases, time.monotonic() - started)
    network = bundle.build("network_def")
    detector = build_detector(bundle, "cpu", network=network)
    detector.set_atss_matcher(num_candidates=4, center_in_gt=False)
    detector.set_hard_negative_sampler(
        batch_size_per_image=128, positive_fraction=0.3, pool_size=20, min_neg=16
    )
    detector.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=1e-4)
    budget = Budget(minutes * 60, lr=2e-3)
    size = np.asarray(bundle.get("train_patch_size", [96, 96, 48]))
    rng = np.random.default_rng(base)
    history = LossLog("lung")
    while not budget.done:
        items = [
            _patch(pool[int(rng.integers(len(pool)))], size, rng, positive=i % 4 != 3)
            for i in range(batch)
        ]
        images = torch.stack([image for image, _ in items])
        losses = detector(images, [target for _, target in items])
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
        batch=batch,
        patch=size.tolist(),
    )
