"""Synthetic follow-up pairs: same patient, later visit, moved anatomy, known growth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dicomnode.synthetic.followup import ChangeStatus, RigidPose, chest_ct_pair


def test_chest_pair_same_patient_later_visit_known_growth() -> None:
    pose = RigidPose((0.0, 0.0, 2.0), (3.0, -2.0, 4.0), (0.0, 0.0, -150.0))
    pair = chest_ct_pair(5, shape=(128, 128, 40), interval_days=120, pose=pose)
    before, after = pair.prior.datasets[0], pair.current.datasets[0]
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"):
        assert before[keyword].value == after[keyword].value
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "AccessionNumber"):
        assert before[keyword].value != after[keyword].value
    assert after.FrameOfReferenceUID != before.FrameOfReferenceUID
    days = np.datetime64(
        f"{after.StudyDate[:4]}-{after.StudyDate[4:6]}-{after.StudyDate[6:]}"
    ) - np.datetime64(f"{before.StudyDate[:4]}-{before.StudyDate[4:6]}-{before.StudyDate[6:]}")
    assert int(days.astype(int)) == 120
    statuses = [c.status for c in pair.changes]
    assert statuses.count(ChangeStatus.NEW) == 1 and statuses.count(ChangeStatus.RESOLVED) == 1
    for change in pair.changes:
        if change.status is ChangeStatus.GROWN:
            factor = change.current_volume_mm3 / change.prior_volume_mm3
            expected = 120 * math.log(2) / math.log(factor)
            assert change.doubling_time_days(120) == pytest.approx(expected)
        if change.prior is not None and change.current is not None:  # the truth follows the pose
            moved = pose.apply(change.prior.centre_mm)
            assert np.allclose(moved, change.current.centre_mm)
            i, j, k = (int(round(v)) for v in change.current.centre_index)
            assert pair.current.volume[k, j, i] > -300  # the nodule is where the truth says
    assert pair.changes[0].doubling_time_days(120) == pytest.approx(120.0)  # factor 2


def test_pose_is_validated() -> None:
    with pytest.raises(ValueError, match="rotation_deg"):
        RigidPose((20.0, 0.0, 0.0))
