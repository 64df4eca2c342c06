"""Fixtures of the pipeline tests: small synthetic studies (held-out seeds) and pipelines.

Seeds used here are below 10000; training uses 100000 and up (models/training/common.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from dicomnode.pipeline import PipelineInputs, SeriesInput
from dicomnode.synthetic import (
    BrainMR,
    ChestCT,
    Mammogram,
    brain_mr,
    brats_study,
    chest_ct,
    mammography,
    write_study,
)

torch.set_num_threads(2)

CT_SEED, MR_SEED, BRATS_SEED, MG_SEED = 11, 12, 13, 14


@dataclass
class Written:
    """A synthetic study, its files and the inputs of a job over it."""

    study: object
    files: list[Path]
    inputs: PipelineInputs


def series_inputs(files: list[Path], datasets: list, role: str | None = None) -> SeriesInput:
    first = datasets[0]
    return SeriesInput(
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
        files=tuple(files),
        modality=str(first.Modality),
        role=role,
    )


def written(study: object, datasets: list, directory: Path) -> Written:
    files = write_study(datasets, directory, shuffle_names=True)
    series = series_inputs(files, datasets)
    return Written(study, files, PipelineInputs(series.study_uid, (series,)))


#: The official MONAI model-zoo configs, byte-identical, beside the checkout (CI has them too).
OFFICIAL = Path(__file__).resolve().parents[3] / "shared" / "monai-bundles"


@pytest.fixture
def official() -> Path:
    """The official bundle configs; a missing ../shared is a failure, not a skip."""
    if not OFFICIAL.is_dir():
        pytest.fail(f"official bundle configs not found at {OFFICIAL} (../shared beside the clone)")
    return OFFICIAL


@pytest.fixture(scope="session")
def ct_study(tmp_path_factory: pytest.TempPathFactory) -> Written:
    ct: ChestCT = chest_ct(CT_SEED, shape=(192, 192, 64), n_nodules=2, diameter_range_mm=(8, 20))
    return written(ct, ct.datasets, tmp_path_factory.mktemp("ct"))


@pytest.fixture(scope="session")
def mr_study(tmp_path_factory: pytest.TempPathFactory) -> Written:
    mr: BrainMR = brain_mr(MR_SEED, shape=(128, 128, 64), n_lesions=3, radius_range_mm=(4, 8))
    return written(mr, mr.datasets, tmp_path_factory.mktemp("mr"))


@pytest.fixture(scope="session")
def brats(tmp_path_factory: pytest.TempPathFactory) -> Written:
    mr = brats_study(BRATS_SEED, shape=(64, 64, 40), n_lesions=2)
    directory = tmp_path_factory.mktemp("brats")
    series = []
    for sequence, datasets in mr.series.items():
        files = write_study(datasets, directory / sequence.value)
        series.append(series_inputs(files, datasets, role=sequence.value.lower()))
    files = [f for s in series for f in s.files]
    return Written(mr, files, PipelineInputs(series[0].study_uid, tuple(series)))


@pytest.fixture(scope="session")
def mg_study(tmp_path_factory: pytest.TempPathFactory) -> Written:
    mg: Mammogram = mammography(MG_SEED, masses={"L": 1}, photometric="MONOCHROME1")
    return written(mg, mg.datasets, tmp_path_factory.mktemp("mg"))
