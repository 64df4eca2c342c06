"""Fixtures of the results tests: algorithm identity, source series."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from dicomnode.results import Algorithm

from .dicom_check import WARNINGS
from .sources import mammo_study, volume_series

ROOT = "1.2.826.0.1.3680043.10.4321"


@pytest.fixture
def algorithm() -> Algorithm:
    return Algorithm(name="lung_nodule", version="1.2.0", model_sha256="ab" * 32)


@pytest.fixture(scope="session")
def ct() -> list[Dataset]:
    return volume_series()


@pytest.fixture(scope="session")
def mg() -> list[Dataset]:
    return mammo_study()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not WARNINGS:
        return
    terminalreporter.section("dciodvfy warnings by object kind")
    for kind in sorted(WARNINGS):
        for line in sorted(WARNINGS[kind]) or ["(none)"]:
            terminalreporter.write_line(f"{kind}: {line}")
