"""Train the demo classifier of ``models/mammo_classification`` on synthetic mammograms."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from dicomnode.pipeline.bundle import load_bundle
from dicomnode.synthetic.random_mg import random_mammography
from models.training.common import TRAIN_SEED_BASE, Budget, LossLog, finish
from pipelines.common.dicomio import decode_pixels
from pipelines.mammo_score.model import DENSITY_LABELS, view_key, view_tensor

log = logging.getLogger(__name__)


def make_views(seed: int, bundle_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4 views of one domain-randomised study as network inputs, and their 5 targets."""
    bundle = load_bundle(bundle_path)
    study = random_mammography(seed, mass_probability=0.5)
    images, targets = [], []
    density = DENSITY_LABELS.index(study.truth.density.value)
    for ds in study.datasets:
        images.append(view_tensor(ds, decode_pixels(ds), bundle))
        target = torch.zeros(5)
        target[density] = 1.0
        target[4] = float(study.truth.has_mass(view_key(ds).laterality))
        targets.append(target)
    return torch.stack(images), torch.stack(targets)


def train(
    bundle_path: Path, minutes: float, steps: int | None = None, studies: int = 400, batch: int = 16
) -> dict:
    """Train for ``minutes`` of wall time (or ``steps``); returns what to record in the metadata."""
    started = time.monotonic()
    bundle = load_bundle(bundle_path)
    base = TRAIN_SEED_BASE["mammo"]
    pairs = [make_views(base + i, bundle_path) for i in range(studies)]
    images = torch.cat([p[0] for p in pairs])
    targets = torch.cat([p[1] for p in pairs])
    log.info("mammo: %d views prepared in %.0f s", len(images), time.monotonic() - started)
    network = bundle.build("network_def")
    network.train()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    optimizer = torch.optim.AdamW(network.parameters(), lr=2e-3, weight_decay=1e-4)
    budget = Budget(minutes * 60, lr=3e-3, steps=steps)
    rng = np.random.default_rng(base)
    history = LossLog("mammo")
    while not budget.done:
        index = torch.from_numpy(rng.choice(len(images), batch, replace=False))
        x = images[index]
        x = x * float(rng.uniform(0.9, 1.1)) + float(rng.normal(0, 0.03))
        if rng.random() < 0.5:
            x = torch.flip(x, (2,))
        loss = loss_fn(network(x), targets[index])
        budget.step(optimizer)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.add(float(loss.detach()), budget)
    return finish(
        "mammo",
        bundle_path,
        network,
        history,
        started=started,
        seeds=f"{base}..{base + studies - 1}",
        batch=batch,
    )
