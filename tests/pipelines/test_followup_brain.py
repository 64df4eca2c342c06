"""Brain lesion follow-up on a synthetic FLAIR pair: registration, new/enlarging counts on the
truth masks, and one run of the shipped model with the prior as ``PipelineInputs.priors``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from dicomnode.pipeline import PipelineInputs, RunContext
from dicomnode.pipeline.contract import PriorInput
from dicomnode.results import Algorithm, encode
from dicomnode.results.changes import ChangeStatus
from dicomnode.synthetic import write_study
from dicomnode.synthetic.followup import BrainMRPair, brain_mr_pair
from dicomnode.synthetic.followup import ChangeStatus as TruthStatus
from dicomnode.synthetic.mr import MRSequence
from pipelines.brain_lesion import BrainLesionPipeline
from pipelines.brain_lesion.followup import Visit, brain_mask_kji, compare_lesions
from pipelines.common.registration import refine_with_images, register_masks

from ..results.dicom_check import verify
from .conftest import series_inputs

PAIR_SEED = 41


@pytest.fixture(scope="module")
def pair() -> BrainMRPair:
    return brain_mr_pair(PAIR_SEED)


def test_counts_exact_on_truth_masks(pair: BrainMRPair) -> None:
    """Registered on the skull-stripped brains and the FLAIRs, the truth label volumes give
    exactly the truth's new and enlarged lesions; the pose is recovered to well under 2 mm."""
    before, after = pair.prior.volumes[MRSequence.FLAIR], pair.current.volumes[MRSequence.FLAIR]
    a, b = pair.prior.geometry.affine(), pair.current.geometry.affine()
    brain_before, brain_after = brain_mask_kji(before, a), brain_mask_kji(after, b)
    coarse = register_masks(brain_before, a, brain_after, b)
    transform = refine_with_images(before, a, brain_before, after, b, coarse)
    points = np.argwhere(brain_before)[::200, ::-1] @ a[:3, :3].T + a[:3, 3]
    truth = points @ pair.pose.matrix[:3, :3].T + pair.pose.matrix[:3, 3]
    error = np.linalg.norm(transform.apply(points) - truth, axis=1)
    assert error.max() <= 2.0, error.max()
    changes = compare_lesions(pair.prior.labels, a, pair.current.labels, b, transform)
    found = {s: sum(1 for c in changes if c.status is s) for s in ChangeStatus}
    assert found[ChangeStatus.NEW] == pair.count(TruthStatus.NEW) == 2
    assert found[ChangeStatus.ENLARGING] == pair.count(TruthStatus.GROWN) == 1
    assert found[ChangeStatus.STABLE] == pair.count(TruthStatus.STABLE)
    assert found[ChangeStatus.RESOLVED] == 0
    for truth_change, change in zip(pair.changes, changes, strict=True):  # label order
        assert change.current_volume_ml == pytest.approx(truth_change.current.volume_ml)


def test_paired_measurement_outweighs_segmentation_differences(pair: BrainMRPair) -> None:
    """A prior segmentation that caught a third of one stable lesion and missed another
    entirely makes the label comparison call them enlarging and new; measured on both FLAIRs
    with one threshold they are stable, the grown lesion stays enlarging, the new ones new, and
    the paired volumes lie within 25 % of the truth."""
    before, after = pair.prior.volumes[MRSequence.FLAIR], pair.current.volumes[MRSequence.FLAIR]
    a, b = pair.prior.geometry.affine(), pair.current.geometry.affine()
    brain_before, brain_after = brain_mask_kji(before, a), brain_mask_kji(after, b)
    transform = refine_with_images(
        before, a, brain_before, after, b, register_masks(brain_before, a, brain_after, b)
    )
    stable = [n for n, c in enumerate(pair.changes, 1) if c.status is TruthStatus.STABLE]
    assert len(stable) == 2
    shrunk, missed = stable
    labels = pair.prior.labels.copy()
    labels[labels == missed] = 0
    lesion = labels == shrunk
    core = lesion & (ndimage.distance_transform_edt(lesion) >= 1.5)
    assert 0 < core.sum() <= lesion.sum() / 3
    labels[lesion & ~core] = 0
    by_labels = compare_lesions(labels, a, pair.current.labels, b, transform)
    assert by_labels[shrunk - 1].status is ChangeStatus.ENLARGING
    assert by_labels[missed - 1].status is ChangeStatus.NEW
    paired = compare_lesions(
        labels,
        a,
        pair.current.labels,
        b,
        transform,
        visits=(Visit(before, brain_before), Visit(after, brain_after)),
    )
    truth_status = {
        TruthStatus.STABLE: ChangeStatus.STABLE,
        TruthStatus.GROWN: ChangeStatus.ENLARGING,
        TruthStatus.NEW: ChangeStatus.NEW,
    }
    assert [c.status for c in paired] == [truth_status[t.status] for t in pair.changes]
    for truth, change in zip(pair.changes, paired, strict=True):
        assert change.current_volume_ml == pytest.approx(truth.current.volume_ml, rel=0.25)
        if truth.prior is not None:
            assert change.prior_volume_ml == pytest.approx(truth.prior.volume_ml, rel=0.25)
            assert change.prior_center is not None
    # The mirror: a lesion the current segmentation missed has not resolved.
    current = (pair.current.labels > 0) & (pair.current.labels != missed)
    gone = compare_lesions(pair.prior.labels, a, current, b, transform)
    assert [c.status for c in gone].count(ChangeStatus.RESOLVED) == 1
    kept = compare_lesions(
        pair.prior.labels,
        a,
        current,
        b,
        transform,
        visits=(Visit(before, brain_before), Visit(after, brain_after)),
    )
    assert [c.status for c in kept].count(ChangeStatus.RESOLVED) == 0
    assert [c.status for c in kept].count(ChangeStatus.STABLE) == len(stable)


def test_pipeline_with_prior_shipped_model(pair: BrainMRPair, tmp_path: Path) -> None:
    """The demo network on the pair: both new lesions flagged, the enlarged one enlarging,
    counts exact (the paired measurement; the segmentations alone call a stable lesion
    enlarging on some pairs); the SR with the change groups passes dciodvfy."""
    current = series_inputs(
        write_study(pair.current.datasets, tmp_path / "c"), pair.current.datasets
    )
    prior = series_inputs(write_study(pair.prior.datasets, tmp_path / "p"), pair.prior.datasets)
    inputs = PipelineInputs(
        current.study_uid,
        (current,),
        priors=(PriorInput(prior, str(pair.prior.datasets[0].StudyDate)),),
    )
    result = BrainLesionPipeline().run(inputs, RunContext(device="cpu", work_dir=tmp_path))
    comparison = result.findings.comparison
    assert comparison is not None and comparison.interval_days == pair.interval_days

    def nearest(centre: tuple[float, float, float]) -> ChangeStatus:
        found = [c for c in comparison.changes if c.current_center is not None]
        distance = [np.linalg.norm(np.subtract(c.current_center, centre)) for c in found]
        assert distance and min(distance) <= 5.0, (centre, comparison.changes)
        return found[int(np.argmin(distance))].status

    for truth in pair.changes:
        if truth.status is TruthStatus.NEW:
            assert nearest(truth.current.centre_mm) is ChangeStatus.NEW
        elif truth.status is TruthStatus.GROWN:
            assert nearest(truth.current.centre_mm) is ChangeStatus.ENLARGING
    assert comparison.count(ChangeStatus.NEW) == pair.count(TruthStatus.NEW)
    assert comparison.count(ChangeStatus.ENLARGING) == pair.count(TruthStatus.GROWN)
    assert comparison.count(ChangeStatus.RESOLVED) == 0
    sr = encode(
        result.findings,
        pair.current.datasets,
        algorithm=Algorithm("brain_lesion", "0.1.0"),
        outputs=["sr", "summary"],
    )
    verify(sr[0], tmp_path, "SR-followup")
    assert sr[1].Columns >= 2 * 128 * len(comparison.snapshots)  # prior beside current
