"""Brain MR: lesions against pixels and headers, BraTS-style study layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dicomnode.synthetic import BrainMR, BrainTissue, MRSequence, brain_mr, write_study
from pipelines.common.dicomio import volume_from_datasets

from .conftest import patient_position


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first = write_study(brain_mr(9, shape=(48, 48, 16)).datasets, tmp_path / "a")
    second = write_study(brain_mr(9, shape=(48, 48, 16)).datasets, tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_different_seed_gives_different_lesions() -> None:
    a, b = brain_mr(1, shape=(48, 48, 16)), brain_mr(2, shape=(48, 48, 16))
    assert not np.array_equal(a.labels, b.labels)


def test_flair_headers() -> None:
    study = brain_mr(1, shape=(48, 48, 16))
    assert list(study.series) == [MRSequence.FLAIR]
    ds = study.datasets[0]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert ds.SeriesDescription == "AX T2 FLAIR"
    assert list(ds.ScanningSequence) == ["SE", "IR"]
    assert float(ds.InversionTime) > 0 and float(ds.RepetitionTime) > float(ds.EchoTime)
    assert float(ds.MagneticFieldStrength) == 3.0
    assert ds.PatientName == "SYNTHETIC^MRPHANTOM^0001"


def test_brats_study_layout(brats: BrainMR) -> None:
    assert set(brats.series) == set(MRSequence)
    first = [series[0] for series in brats.series.values()]
    assert len({ds.StudyInstanceUID for ds in first}) == 1
    assert len({ds.SeriesInstanceUID for ds in first}) == 4
    assert len({ds.SeriesDescription for ds in first}) == 4
    assert len({ds.FrameOfReferenceUID for ds in first}) == 1
    for position in zip(*(s for s in brats.series.values()), strict=True):
        assert len({tuple(ds.ImagePositionPatient) for ds in position}) == 1
    assert len(brats.datasets) == 4 * 40


def test_lesion_volumes_match_mask(brats: BrainMR) -> None:
    assert len(brats.lesions) == 4
    for lesion in brats.lesions:
        count = int(np.count_nonzero(brats.labels == lesion.label))
        assert count == lesion.voxel_count > 0
        assert lesion.volume_ml == pytest.approx(count * brats.geometry.voxel_volume_mm3 / 1000)
    assert np.array_equal(brats.lesion_mask, brats.tissue == BrainTissue.LESION)


@pytest.mark.parametrize("sequence", [MRSequence.FLAIR, MRSequence.T2, MRSequence.T1C])
def test_lesions_brighter_than_white_matter(brats: BrainMR, sequence: MRSequence) -> None:
    volume = brats.volumes[sequence].astype(float)
    white = volume[brats.tissue == BrainTissue.WHITE_MATTER].mean()
    for lesion in brats.lesions:
        assert volume[brats.labels == lesion.label].mean() > white + 200


def test_flair_csf_is_dark(brats: BrainMR) -> None:
    flair = brats.volumes[MRSequence.FLAIR].astype(float)
    t2 = brats.volumes[MRSequence.T2].astype(float)
    csf = brats.tissue == BrainTissue.CSF
    white = brats.tissue == BrainTissue.WHITE_MATTER
    assert flair[csf].mean() < 0.5 * flair[white].mean()
    assert t2[csf].mean() > 1.5 * t2[white].mean()


@pytest.mark.parametrize("reverse", [False, True])
def test_lesion_centre_from_headers(reverse: bool) -> None:
    study = brain_mr(4, shape=(64, 64, 32), reverse_order=reverse)
    row_spacing, column_spacing = study.geometry.pixel_spacing_mm
    tolerance = np.array([column_spacing, row_spacing, study.geometry.slice_spacing_mm]) / 2
    for lesion in study.lesions:
        i, j, k = (round(value) for value in lesion.centre_index)
        error = patient_position(study.datasets[k], i, j) - np.array(lesion.centre_mm)
        assert np.all(np.abs(error) <= tolerance + 1e-6)


def test_reverse_order_only_flips() -> None:
    forward = brain_mr(4, shape=(48, 48, 16))
    backward = brain_mr(4, shape=(48, 48, 16), reverse_order=True)
    assert np.array_equal(forward.labels, backward.labels[::-1])
    flair = MRSequence.FLAIR
    assert np.array_equal(forward.volumes[flair], backward.volumes[flair][::-1])
    assert [x.centre_mm for x in forward.lesions] == [x.centre_mm for x in backward.lesions]


def test_slice_order_puts_the_truth_in_the_readers_order() -> None:
    forward = brain_mr(4, shape=(48, 48, 16))
    backward = brain_mr(4, shape=(48, 48, 16), reverse_order=True)
    read = {
        name: volume_from_datasets(study.series[MRSequence.FLAIR])
        for name, study in (("forward", forward), ("backward", backward))
    }
    assert np.array_equal(read["forward"].array, read["backward"].array)
    orders = {
        name: study.slice_order(read[name].geometry.sop_instance_uids)
        for name, study in (("forward", forward), ("backward", backward))
    }
    assert orders["backward"] == orders["forward"][::-1]
    assert np.array_equal(forward.labels[orders["forward"]], backward.labels[orders["backward"]])
    with pytest.raises(KeyError):
        brain_mr(5, shape=(48, 48, 16)).slice_order(read["forward"].geometry.sop_instance_uids)
