"""Summary image and the encode() entry point: output selection, labels, study, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomnode.results import (
    DEFAULT_OUTPUTS,
    Algorithm,
    Classification,
    EncodingError,
    Findings,
    Mask,
    OutputKind,
    Predecessor,
    RegionFinding,
    encode,
    geometry_from_datasets,
)

from .dicom_check import verify
from .sources import volume_series

ROOT = "1.2.826.0.1.3680043.10.4321"


def _nodule_findings(ct: list[Dataset]) -> Findings:
    geo = geometry_from_datasets(ct)
    mask = np.zeros(geo.shape, bool)
    mask[6, 20:26, 30:36] = True
    region = RegionFinding.sphere("lung_nodule", geo.index_to_patient(6, 23, 33), 5.0, score=0.8)
    return Findings(
        kinds=("lung_nodule",), regions=(region,), masks=(Mask("lung_nodule", mask, geo),)
    )


def test_default_outputs(ct: list[Dataset], algorithm: Algorithm, tmp_path: Path) -> None:
    seg, sr, summary = encode(
        _nodule_findings(ct), ct, algorithm=algorithm, uid_root=ROOT, series_number=40
    )
    assert (seg.Modality, sr.Modality, summary.Modality) == ("SEG", "SR", "OT")
    assert (sr.SeriesNumber, seg.SeriesNumber, summary.SeriesNumber) == (40, 41, 42)
    assert len({seg.SeriesInstanceUID, sr.SeriesInstanceUID, summary.SeriesInstanceUID}) == 3
    for ds in (seg, sr, summary):
        assert ds.StudyInstanceUID == ct[0].StudyInstanceUID
        assert ds.PatientID == ct[0].PatientID
        assert ds.Manufacturer == "dicomnode"
        assert (
            "lung_nodule 1.2.0" in ds.SeriesDescription
            and "RESEARCH USE ONLY" in ds.SeriesDescription
        )
    verify(summary, tmp_path, "SC")
    assert summary.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert "RESEARCH USE ONLY" in summary.ImageComments
    pixels = summary.pixel_array
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.shape[0] > 256
    yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 180) & (pixels[..., 2] < 60)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert yellow[:256].any() and red[:256].any()  # region outline and mask contour drawn


def test_summary_empty_and_mammo(ct: list[Dataset], mg: list[Dataset], tmp_path: Path) -> None:
    alg = Algorithm("mammo_score", "0.3.0")
    (summary,) = encode(
        Findings(kinds=("lung_nodule",)), ct, algorithm=alg, outputs=["summary"], uid_root=ROOT
    )
    verify(summary, tmp_path, "SC")
    findings = Findings(
        kinds=("breast_assessment",),
        classifications=(
            Classification("breast_assessment", "L", score=0.1, density="A"),
            Classification("breast_assessment", "R", score=0.9, density="D"),
        ),
    )
    (summary,) = encode(findings, mg, algorithm=alg, outputs=["summary"], uid_root=ROOT)
    verify(summary, tmp_path, "SC-mammo")
    assert summary.pixel_array.shape[1] == 4 * 256  # the four views side by side
    sr, summary = encode(Findings(kinds=("breast_assessment",)), mg, algorithm=alg, uid_root=ROOT)
    verify(sr, tmp_path, "SR-empty")
    verify(summary, tmp_path, "SC-mammo")
    assert summary.pixel_array.shape[1] == 4 * 256


def test_output_selection_and_predecessor(
    ct: list[Dataset], algorithm: Algorithm, tmp_path: Path
) -> None:
    findings = _nodule_findings(ct)
    assert set(DEFAULT_OUTPUTS) == set(OutputKind)
    first = encode(findings, ct, algorithm=algorithm, outputs=["seg", "summary"], uid_root=ROOT)
    assert [ds.Modality for ds in first] == ["SEG", "OT"]
    rerun = encode(
        findings,
        ct,
        algorithm=algorithm,
        outputs=["seg", "summary"],
        uid_root=ROOT,
        predecessor=[Predecessor.from_dataset(ds) for ds in first],
    )
    for old, new in zip(first, rerun, strict=True):
        assert new.SOPInstanceUID != old.SOPInstanceUID
        (related,) = new.RelatedSeriesSequence
        assert related.SeriesInstanceUID == old.SeriesInstanceUID
        verify(new, tmp_path, {"SEG": "SEG", "OT": "SC"}[new.Modality])


def test_encoding_errors(ct: list[Dataset], algorithm: Algorithm) -> None:
    findings = Findings(kinds=("lung_nodule",))
    with pytest.raises(EncodingError, match="outputs must be among sr, seg, summary"):
        encode(findings, ct, algorithm=algorithm, outputs=["pdf"])
    with pytest.raises(EncodingError, match="exactly 1 study"):
        encode(findings, ct + volume_series(key="other-study"), algorithm=algorithm)
    with pytest.raises(EncodingError, match="at least 1 dataset"):
        encode(findings, [], algorithm=algorithm)
    with pytest.raises(EncodingError, match="uid_root"):
        encode(findings, ct, algorithm=algorithm, uid_root="1.2.x")
    with pytest.raises(ValueError, match="model_sha256 must be 64"):
        Algorithm("x", "1", "nothex")


def test_summary_refuses_oversized_frames(ct: list[Dataset]) -> None:
    from dicomnode.results.sources import display_slice

    huge = Dataset()
    huge.Rows = huge.Columns = 60000
    huge.BitsAllocated = 16
    with pytest.raises(EncodingError, match="exceeds"):
        display_slice(huge)
    assert display_slice(ct[0]).dtype == np.uint8
