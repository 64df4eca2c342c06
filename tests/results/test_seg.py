"""SEG: geometry (voxel (k, i, j) lands on the frame referencing slice k), codes, validity."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomnode.results import (
    Algorithm,
    EncodingError,
    FindingKind,
    Findings,
    Mask,
    OutputKind,
    RegionFinding,
    encode,
    geometry_from_datasets,
)

from .dicom_check import verify, write
from .sources import volume_series

ROOT = "1.2.826.0.1.3680043.10.4321"
VOXELS = [(0, 0, 0), (3, 10, 20), (7, 63, 5), (19, 40, 63)]

SERIES = {
    "plain": {},
    "reverse": {"reverse": True},
    "non_uniform": {
        "z_positions": [0, 1, 2.5, 5, 5.5, 9, 14, 15, 22, 30] * 1
        + [31 + 1.5 * i for i in range(10)]
    },
    "tilt": {"tilt_degrees": 25.0},
    "all": {
        "reverse": True,
        "tilt_degrees": -15.0,
        "z_positions": [3.0 * i + 0.1 * i * i for i in range(20)],
    },
    "mr": {"modality": "MR"},
}


def _seg(
    series: list[Dataset], mask: np.ndarray, algorithm: Algorithm, kind: str = "lung_nodule"
) -> Dataset:
    geo = geometry_from_datasets(series)
    findings = Findings(kinds=(kind,), masks=(Mask(kind, mask, geo),))
    (seg,) = encode(findings, series, algorithm=algorithm, outputs=[OutputKind.SEG], uid_root=ROOT)
    return seg


def _frame_source(seg: Dataset, frame: int) -> tuple[str, int | None, list[float]]:
    item = seg.PerFrameFunctionalGroupsSequence[frame]
    source = item.DerivationImageSequence[0].SourceImageSequence[0]
    number = source.get("ReferencedFrameNumber")
    position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
    return str(source.ReferencedSOPInstanceUID), (int(number) if number else None), position


@pytest.mark.parametrize("name", list(SERIES))
def test_voxel_lands_on_referenced_frame(name: str, algorithm: Algorithm, tmp_path: Path) -> None:
    series = volume_series(**SERIES[name], key=name)
    geo = geometry_from_datasets(series)
    mask = np.zeros(geo.shape, bool)
    for k, i, j in VOXELS:
        mask[k, i, j] = True
    seg = _seg(series, mask, algorithm, "brain_lesion" if name == "mr" else "lung_nodule")
    verify(seg, tmp_path, "SEG")
    assert seg.NumberOfFrames == len(VOXELS)  # empty frames omitted
    by_uid = {str(ds.SOPInstanceUID): ds for ds in series}
    seen = set()
    for f in range(seg.NumberOfFrames):
        uid, _, position = _frame_source(seg, f)
        k = geo.sop_instance_uids.index(uid)
        assert position == pytest.approx([float(v) for v in by_uid[uid].ImagePositionPatient])
        seen.add(k)
    assert seen == {k for k, _, _ in VOXELS}
    back = hd.seg.segread(write(seg, tmp_path / "seg.dcm"))
    for k, i, j in VOXELS:
        pixels = back.get_pixels_by_source_instance(
            source_sop_instance_uids=[geo.sop_instance_uids[k]], segment_numbers=[1]
        )[0, :, :, 0]
        assert np.argwhere(pixels).tolist() == [[i, j]]


def test_multi_frame_source(algorithm: Algorithm, tmp_path: Path) -> None:
    series = volume_series(key="mf")
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        series,
        series_instance_uid=f"{ROOT}.7",
        series_number=7,
        sop_instance_uid=f"{ROOT}.8",
        instance_number=1,
    )
    geo = geometry_from_datasets([enhanced])
    assert geo.frame_numbers is not None
    mask = np.zeros(geo.shape, bool)
    for k, i, j in VOXELS:
        mask[k, i, j] = True
    findings = Findings(kinds=("lung_nodule",), masks=(Mask("lung_nodule", mask, geo),))
    (seg,) = encode(findings, [enhanced], algorithm=algorithm, outputs=["seg"], uid_root=ROOT)
    verify(seg, tmp_path, "SEG")
    assert seg.NumberOfFrames == len(VOXELS)
    referenced = {_frame_source(seg, f)[1] for f in range(seg.NumberOfFrames)}
    assert referenced == {geo.frame_numbers[k] for k, _, _ in VOXELS}
    back = hd.seg.segread(write(seg, tmp_path / "seg.dcm"))
    for k, i, j in VOXELS:
        pixels = back.get_pixels_by_source_frame(
            source_sop_instance_uid=str(enhanced.SOPInstanceUID),
            source_frame_numbers=[geo.frame_numbers[k]],
            segment_numbers=[1],
        )[0, :, :, 0]
        assert np.argwhere(pixels).tolist() == [[i, j]]
        plane = enhanced.PerFrameFunctionalGroupsSequence[geo.frame_numbers[k] - 1]
        expected = [float(v) for v in plane.PlanePositionSequence[0].ImagePositionPatient]
        assert list(geo.positions[k]) == pytest.approx(expected)
    region = RegionFinding.sphere("lung_nodule", geo.index_to_patient(3, 10, 20), 4.0, score=0.7)
    findings = Findings(kinds=("lung_nodule",), regions=(region,), masks=findings.masks)
    seg, sr, summary = encode(findings, [enhanced], algorithm=algorithm, uid_root=ROOT)
    verify(sr, tmp_path, "SR")
    verify(summary, tmp_path, "SC")
    (group, _) = hd.sr.srread(
        write(sr, tmp_path / "sr.dcm")
    ).content.get_volumetric_roi_measurement_groups()
    (image,) = group.roi.source_images_for_segmentation
    assert image.referenced_frame_numbers == [geo.frame_numbers[3]]


def test_segments_codes_and_algorithm(
    ct: list[Dataset], algorithm: Algorithm, tmp_path: Path
) -> None:
    geo = geometry_from_datasets(ct)
    nodules = np.zeros(geo.shape, bool)
    nodules[4, 5:8, 5:8] = True
    lesions = np.zeros(geo.shape, bool)
    lesions[4, 20:22, 20:22] = True
    lesions[9, 1, 1] = True
    findings = Findings(
        kinds=("lung_nodule", "brain_lesion"),
        masks=(
            Mask("lung_nodule", nodules, geo),
            Mask("brain_lesion", lesions, geo, label="FLAIR lesions"),
        ),
    )
    (seg,) = encode(findings, ct, algorithm=algorithm, outputs=["seg"], uid_root=ROOT)
    verify(seg, tmp_path, "SEG")
    assert seg.SegmentationType == "BINARY"
    first, second = seg.SegmentSequence
    assert first.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert first.SegmentedPropertyTypeCodeSequence[0].CodeValue == "27925004"
    assert first.AnatomicRegionSequence[0].CodeValue == "39607008"
    assert second.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    assert second.SegmentLabel == "FLAIR lesions"
    alg = first.SegmentationAlgorithmIdentificationSequence[0]
    assert (alg.AlgorithmName, alg.AlgorithmVersion) == ("lung_nodule", "1.2.0")
    assert algorithm.model_sha256 in alg.AlgorithmParameters
    assert seg.Manufacturer == seg.ManufacturerModelName == "dicomnode"
    assert (
        "RESEARCH USE ONLY" in seg.SeriesDescription
        and "lung_nodule 1.2.0" in seg.SeriesDescription
    )
    assert "RESEARCH USE ONLY" in seg.ContentDescription
    assert seg.StudyInstanceUID == ct[0].StudyInstanceUID
    assert seg.SeriesInstanceUID != ct[0].SeriesInstanceUID
    assert seg.SOPInstanceUID.startswith(ROOT + ".")
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert {str(r.ReferencedSOPInstanceUID) for r in referenced} == set(geo.sop_instance_uids)
    back = hd.seg.segread(write(seg, tmp_path / "seg.dcm"))
    volume = back.get_pixels_by_source_instance(
        source_sop_instance_uids=list(geo.sop_instance_uids), segment_numbers=[1, 2]
    )
    assert np.array_equal(volume[..., 0].astype(bool), nodules)
    assert np.array_equal(volume[..., 1].astype(bool), lesions)


def test_empty_mask_gives_no_seg(ct: list[Dataset], algorithm: Algorithm) -> None:
    geo = geometry_from_datasets(ct)
    findings = Findings(
        kinds=("lung_nodule",), masks=(Mask("lung_nodule", np.zeros(geo.shape, bool), geo),)
    )
    assert encode(findings, ct, algorithm=algorithm, outputs=["seg"], uid_root=ROOT) == []


def test_mask_on_unknown_instances_is_an_encoding_error(
    ct: list[Dataset], algorithm: Algorithm
) -> None:
    other = volume_series(key="other")
    geo = geometry_from_datasets(other)
    mask = np.zeros(geo.shape, bool)
    mask[2, 2, 2] = True
    findings = Findings(kinds=("lung_nodule",), masks=(Mask(FindingKind.LUNG_NODULE, mask, geo),))
    with pytest.raises(EncodingError, match="not in sources"):
        encode(findings, ct, algorithm=algorithm, outputs=["seg"], uid_root=ROOT)
