"""A finding-like distractor outside the anatomy is not reported (issue 12, "done when").

Each pipeline runs on a phantom with a blob painted outside its anatomy: a soft-tissue sphere
in the chest wall's fat (CT), a lesion-bright blob in the scalp (FLAIR), a bright blob in the
background beside the breast (MG, a skin fold or marker).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dicomnode.pipeline import RunContext
from dicomnode.pipeline.bundle import load_bundle
from dicomnode.results import Laterality
from dicomnode.synthetic import brain_mr, chest_ct, mammography
from pipelines.brain_lesion import BrainLesionPipeline
from pipelines.common.dicomio import decode_pixels
from pipelines.lung_nodule import LungNodulePipeline
from pipelines.mammo_score import MammoScorePipeline
from pipelines.mammo_score.model import view_tensor

from .anatomy_helpers import SMALL_CT, ball_painter, repaint
from .conftest import written


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    return RunContext(device="cpu", work_dir=tmp_path_factory.mktemp("work"))


def test_chest_wall_blob_is_not_a_nodule(tmp_path: Path, ctx: RunContext) -> None:
    ct = chest_ct(41, n_nodules=1, diameter_range_mm=(10, 16), **SMALL_CT)  # type: ignore[arg-type]
    geometry = ct.geometry
    z = ct.nodules[0].centre_mm[2]
    blob = (-0.69 * 158.0, -5.0, z)  # patient right, in the fat over the chest wall muscle
    centre = geometry.patient_to_index(*blob)
    radius = 7.5  # a 15 mm sphere of 40 HU (without the lung mask: reported, score 0.08)
    spacing = (*geometry.pixel_spacing_mm[::-1], geometry.slice_spacing_mm)
    before = ct.volume[int(round(centre[2])), int(round(centre[1])), int(round(centre[0]))]
    assert -200 < before < 0, before  # fat
    stored = 40 - int(ct.datasets[0].RescaleIntercept)
    painter = ball_painter(centre, tuple(radius / s for s in spacing), stored)  # type: ignore[arg-type]
    study = written(ct, repaint(ct.datasets, painter), tmp_path)
    options = {"threshold": 0.0, "min_diameter_mm": 0.0, "max_findings": 1000}
    regions = LungNodulePipeline(options).run(study.inputs, ctx).findings.regions
    distances = [float(np.linalg.norm(np.subtract(r.center, blob))) for r in regions]
    assert not distances or min(distances) > 10.0, min(distances)
    nodule = np.asarray(ct.nodules[0].centre_mm)
    assert min(float(np.linalg.norm(np.subtract(r.center, nodule))) for r in regions) < 5.0


def test_scalp_blob_is_not_a_lesion(tmp_path: Path, ctx: RunContext) -> None:
    mr = brain_mr(42, shape=(96, 96, 48), n_lesions=2, radius_range_mm=(4, 7))
    geometry = mr.geometry
    blob = (72.5, 0.0, 40.0)  # patient left, in the scalp at the head's mid-height
    centre = geometry.patient_to_index(*blob)
    i, j, k = (int(round(v)) for v in centre)
    assert mr.tissue[k, j, i] == 1  # BrainTissue.SCALP
    radius = 5.0
    spacing = (*geometry.pixel_spacing_mm[::-1], geometry.slice_spacing_mm)
    painter = ball_painter(centre, tuple(radius / s for s in spacing), 950)  # type: ignore[arg-type]
    study = written(mr, repaint(mr.datasets, painter), tmp_path)
    mask = BrainLesionPipeline().run(study.inputs, ctx).findings.masks[0].array
    kk, jj, ii = np.nonzero(mask)
    points = np.asarray([geometry.index_to_patient(*p) for p in zip(ii, jj, kk, strict=True)])
    near = np.linalg.norm(points - np.asarray(blob), axis=1) <= 10.0 if len(points) else []
    assert not np.any(near)


def _scores(result: object) -> dict[Laterality, np.ndarray]:
    return {
        c.laterality: np.asarray([c.score or 0.0] + [p.probability for p in c.probabilities])
        for c in result.findings.classifications  # type: ignore[attr-defined]
    }


def test_background_blob_leaves_the_breast_scores_unchanged(
    tmp_path: Path, ctx: RunContext
) -> None:
    mg = mammography(43, masses={"L": 1})
    target = next(
        n
        for n, ds in enumerate(mg.datasets)
        if ds.ImageLaterality == "L" and ds.ViewPosition == "CC"
    )
    pixels = mg.datasets[target].pixel_array
    rows, columns = pixels.shape
    centre = (columns - 40.0, 40.0)  # far from the chest wall (left for an L view), at the top
    assert pixels[10:70, columns - 70 : columns - 10].max() < 0.1 * pixels.max()  # background
    brightest = int(pixels.max())

    def paint(index: int, image: np.ndarray) -> None:
        if index == target:
            jj, ii = np.mgrid[:rows, :columns]
            image[(ii - centre[0]) ** 2 + (jj - centre[1]) ** 2 <= 30**2] = brightest

    repainted = repaint(mg.datasets, paint)
    # The blob never reaches the network: the view's input is the same (with any weights).
    bundle = load_bundle(MammoScorePipeline().bundle_path)
    inputs = [
        view_tensor(ds, decode_pixels(ds), bundle)
        for ds in (mg.datasets[target], repainted[target])
    ]
    assert torch.equal(*inputs)
    plain = written(mg, mg.datasets, tmp_path / "plain")
    painted = written(mg, repainted, tmp_path / "painted")
    before = _scores(MammoScorePipeline().run(plain.inputs, ctx))
    after = _scores(MammoScorePipeline().run(painted.inputs, ctx))
    assert set(before) == set(after) == {Laterality.LEFT, Laterality.RIGHT}
    for side in before:
        np.testing.assert_allclose(after[side], before[side], atol=1e-3)
