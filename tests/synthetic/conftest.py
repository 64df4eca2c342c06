"""Studies shared by the tests of this package (generated once per session: they are pure)."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomnode.synthetic import BrainMR, ChestCT, Mammogram, brats_study, chest_ct, mammography


@pytest.fixture(scope="session")
def ct() -> ChestCT:
    """A small chest CT with three nodules large enough to measure at 2.8 mm pixels."""
    return chest_ct(11, shape=(128, 128, 48), n_nodules=3, diameter_range_mm=(12.0, 24.0))


@pytest.fixture(scope="session")
def ct_reversed() -> ChestCT:
    """The same CT stacked head first (slice 1 is the most superior)."""
    return chest_ct(
        11, shape=(128, 128, 48), n_nodules=3, diameter_range_mm=(12.0, 24.0), reverse_order=True
    )


@pytest.fixture(scope="session")
def brats() -> BrainMR:
    """A BraTS-style study (T1, T1c, T2, FLAIR) with four lesions."""
    return brats_study(5, shape=(80, 80, 40), n_lesions=4)


@pytest.fixture(scope="session")
def mammo() -> Mammogram:
    """A mammogram with one mass in the left breast only."""
    return mammography(3, shape=(256, 208), masses={"L": 1})


def patient_position(ds: Dataset, i: float, j: float) -> np.ndarray:
    """Patient coordinate of pixel (column i, row j) computed from the Image Plane module."""
    position = np.array([float(v) for v in ds.ImagePositionPatient])
    orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
    return position + i * column_spacing * orientation[:3] + j * row_spacing * orientation[3:]
