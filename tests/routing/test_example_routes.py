"""The shipped example config routes what scanners of several vendors call a FLAIR or a chest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydicom import Dataset

from dicomnode.routing import SeriesFacts, compile_routes

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "hospital.example.yaml"


def _routes() -> list:
    config = yaml.safe_load(EXAMPLE.read_text())
    return compile_routes(config["routes"], destinations=set(config["destinations"]))


def _mr(description: str) -> SeriesFacts:
    header = Dataset()
    header.Modality = "MR"
    header.SeriesDescription = description
    header.StudyInstanceUID, header.SeriesInstanceUID = "1.2.3", "1.2.3.4"
    return SeriesFacts.from_header(header, instances=30)


@pytest.mark.parametrize(
    "description",
    [
        "Ax T2 FLAIR",  # GE
        "Sag CUBE FLAIR",  # GE 3D
        "T2W_FLAIR",  # Philips
        "3D_Brain_VIEW_FLAIR_SHC",  # Philips 3D
        "t2_tirm_tra_dark-fluid",  # Siemens 2D
        "t2_space_dark-fluid_sag_p2_iso",  # Siemens 3D
        "t2_darkfluid_tra",
    ],
)
def test_vendor_flair_names_reach_the_brain_pipeline(description: str) -> None:
    matched = [r.pipeline for r in _routes() if r.match(_mr(description)).matched]
    assert matched == ["brain_lesion"]


@pytest.mark.parametrize("description", ["t2_tse_tra", "t1_mprage_sag", "ep2d_diff_3scan_trace"])
def test_other_mr_series_are_not_routed(description: str) -> None:
    assert [r.name for r in _routes() if r.match(_mr(description)).matched] == []


def _ct(body_part: str) -> SeriesFacts:
    header = Dataset()
    header.Modality, header.BodyPartExamined, header.SliceThickness = "CT", body_part, "1.25"
    header.StudyInstanceUID, header.SeriesInstanceUID = "1.2.3", "1.2.3.5"
    return SeriesFacts.from_header(header, instances=250)


@pytest.mark.parametrize(
    ("body_part", "routed"),
    [
        ("CHEST", True),
        ("Thorax", True),
        ("LUNG", True),
        ("CHEST_ABDOMEN_PELVIS", True),  # staging CTs hold the lungs too
        ("CHESTABDPELVIS", True),
        ("ABDOMEN", False),
        ("HEAD", False),
    ],
)
def test_chest_ct_body_parts(body_part: str, routed: bool) -> None:
    matched = [r.pipeline for r in _routes() if r.match(_ct(body_part)).matched]
    assert matched == (["lung_nodule"] if routed else [])
