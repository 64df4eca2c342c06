"""Lung nodule follow-up on a synthetic pair with known truth: registration, volumetry and
doubling times, matching, and one pipeline run with the prior as ``PipelineInputs.priors``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomnode.pipeline import PipelineInputs, RunContext
from dicomnode.pipeline.contract import PriorInput
from dicomnode.results import Algorithm, Findings, RegionFinding, encode
from dicomnode.results.changes import ChangeStatus, RegionChange
from dicomnode.synthetic import write_study
from dicomnode.synthetic.followup import ChangeStatus as TruthStatus
from dicomnode.synthetic.followup import ChestCTPair, chest_ct_pair
from pipelines.common.registration import RigidTransform, register_masks
from pipelines.lung_nodule import LungNodulePipeline
from pipelines.lung_nodule.followup import MeasuredNodule, compare_nodules
from pipelines.lung_nodule.lungs import lung_mask
from pipelines.lung_nodule.volumetry import nodule_volume_mm3

from ..results.dicom_check import verify
from .conftest import series_inputs

PAIR_SEED = 31


@pytest.fixture(scope="module")
def pair() -> ChestCTPair:
    return chest_ct_pair(PAIR_SEED)


@pytest.fixture(scope="module")
def transform(pair: ChestCTPair) -> RigidTransform:
    prior = lung_mask(pair.prior.volume.astype(np.float32), pair.prior.geometry.affine())
    current = lung_mask(pair.current.volume.astype(np.float32), pair.current.geometry.affine())
    return register_masks(prior.mask, prior.affine, current.mask, current.affine)


def _vdt_error(change: object, truth_vdt: float, interval: int) -> float:
    measured = change.doubling_time_days(interval)  # type: ignore[attr-defined]
    assert measured is not None, change
    return abs(measured - truth_vdt) / truth_vdt


def test_registration_recovers_the_pose(pair: ChestCTPair, transform: RigidTransform) -> None:
    prior = pair.prior.geometry
    corners = np.array(
        [prior.index_to_patient(i, j, k) for i in (40, 120) for j in (40, 120) for k in (10, 45)]
    )
    truth = corners @ pair.pose.matrix[:3, :3].T + pair.pose.matrix[:3, 3]
    error = np.linalg.norm(transform.apply(corners) - truth, axis=1)
    assert error.max() <= 2.0, error
    shift = np.linalg.norm(pair.pose.matrix[:3, 3])
    assert shift > 5.0  # the pose is not trivial: unregistered centres would be this far off


def test_doubling_times_new_and_resolved_on_truth_centres(
    pair: ChestCTPair, transform: RigidTransform
) -> None:
    """Volumetry at the true centres (the detector is tested below): doubling times within
    15 % of the truth for nodules of 6 mm and more; new and resolved flagged; stable stable."""

    def measured(ct: object, nodules: list) -> list[MeasuredNodule]:
        affine = ct.geometry.affine()  # type: ignore[attr-defined]
        hu = ct.volume.astype(np.float32)  # type: ignore[attr-defined]
        return [
            MeasuredNodule(
                n.centre_mm,
                nodule_volume_mm3(hu, affine, np.asarray(n.centre_mm), n.diameter_mm),
                n.diameter_mm,
                f"nodule {i}",
            )
            for i, n in enumerate(nodules, start=1)
        ]

    prior = measured(pair.prior, pair.prior.nodules)
    current = measured(pair.current, pair.current.nodules)
    changes = compare_nodules(prior, current, transform)
    by_centre = {c.current_center: c for c in changes if c.current_center is not None}
    resolved = [c for c in changes if c.status is ChangeStatus.RESOLVED]
    assert len(resolved) == 1
    for truth in pair.changes:
        if truth.status is TruthStatus.RESOLVED:
            assert resolved[0].prior_center == pytest.approx(truth.prior.centre_mm)
            continue
        change = by_centre[tuple(truth.current.centre_mm)]
        if truth.status is TruthStatus.NEW:
            assert change.status is ChangeStatus.NEW
        elif truth.status is TruthStatus.STABLE:
            assert change.status is ChangeStatus.STABLE
        else:
            assert change.status is ChangeStatus.ENLARGING
            assert truth.prior.diameter_mm >= 6.0
            vdt = truth.doubling_time_days(pair.interval_days)
            assert _vdt_error(change, vdt, pair.interval_days) <= 0.15


def _prior_report(pair: ChestCTPair, path: Path) -> Path:
    """Our own earlier SR of the prior study: its nodules with their segmented volumes."""
    affine = pair.prior.geometry.affine()
    hu = pair.prior.volume.astype(np.float32)
    regions = tuple(
        RegionFinding.sphere(
            "lung_nodule",
            n.centre_mm,
            n.diameter_mm,
            volume_ml=nodule_volume_mm3(hu, affine, np.asarray(n.centre_mm), n.diameter_mm) / 1e3,
            tracking_id=f"nodule {i}",
        )
        for i, n in enumerate(pair.prior.nodules, start=1)
    )
    findings = Findings(kinds=("lung_nodule",), regions=regions)
    (sr,) = encode(
        findings, pair.prior.datasets, algorithm=Algorithm("lung_nodule", "0.1.0"), outputs=["sr"]
    )
    sr.save_as(path, enforce_file_format=True)
    return path


def test_pipeline_reports_change_with_the_prior(pair: ChestCTPair, tmp_path: Path) -> None:
    """One run, prior through ``PipelineInputs.priors`` with our earlier SR of it (used instead
    of detecting on the prior, and referenced): grown nodules' doubling times within 15 %, the
    new nodule flagged, the resolved one too; the SR passes dciodvfy."""
    current = series_inputs(
        write_study(pair.current.datasets, tmp_path / "c"), pair.current.datasets
    )
    prior = series_inputs(write_study(pair.prior.datasets, tmp_path / "p"), pair.prior.datasets)
    report = _prior_report(pair, tmp_path / "prior-sr.dcm")
    inputs = PipelineInputs(
        current.study_uid,
        (current,),
        priors=(PriorInput(prior, str(pair.prior.datasets[0].StudyDate), (report,)),),
    )
    ctx = RunContext(device="cpu", work_dir=tmp_path, options={"threshold": 0.3})
    result = LungNodulePipeline().run(inputs, ctx)
    comparison = result.findings.comparison
    assert comparison is not None and comparison.interval_days == pair.interval_days
    assert comparison.prior_study_uid == prior.study_uid
    report_uid = str(pydicom.dcmread(report).SOPInstanceUID)
    assert report_uid in {ref.sop_instance_uid for ref in comparison.evidence}

    def nearest(centre: tuple[float, float, float]) -> RegionChange:
        found = [c for c in comparison.changes if c.current_center is not None]
        distance = [np.linalg.norm(np.subtract(c.current_center, centre)) for c in found]
        assert distance and min(distance) <= 5.0, (centre, comparison.changes)
        return found[int(np.argmin(distance))]

    for truth in pair.changes:
        if truth.status is TruthStatus.GROWN:
            change = nearest(truth.current.centre_mm)
            assert change.status is ChangeStatus.ENLARGING
            vdt = truth.doubling_time_days(pair.interval_days)
            assert _vdt_error(change, vdt, pair.interval_days) <= 0.15
        elif truth.status is TruthStatus.NEW:
            assert nearest(truth.current.centre_mm).status is ChangeStatus.NEW
    assert comparison.count(ChangeStatus.RESOLVED) == 1
    assert comparison.snapshots
    sr = encode(
        result.findings,
        pair.current.datasets,
        algorithm=Algorithm("lung_nodule", "0.1.0"),
        outputs=["sr"],
    )[0]
    verify(sr, tmp_path, "SR-followup")
    evidence = sr.PertinentOtherEvidenceSequence[0]
    assert evidence.StudyInstanceUID == prior.study_uid
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in evidence.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert report_uid in referenced
