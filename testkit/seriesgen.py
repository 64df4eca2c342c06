"""Series for job tests: :mod:`testkit.dicomgen` instances with what encoders need."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from testkit import dicomgen
from testkit.dicomgen import SeriesSpec, uid


def write_series(
    spec: SeriesSpec, directory: Path, *, description: str | None = None, value: int = 0
) -> list[Path]:
    """Write ``spec`` with a frame of reference, study date/time and ``description``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(spec.count):
        ds = dicomgen.instance(spec, index, value=value)
        ds.FrameOfReferenceUID = uid(spec.study_uid, "for")
        ds.StudyDate, ds.StudyTime = "20240101", "120000"
        ds.StudyID, ds.AccessionNumber = "1", "ACC1"
        ds.ReferringPhysicianName, ds.PatientSex = "", "O"
        ds.Manufacturer = "TEST"
        if description is not None:
            ds.SeriesDescription = description
        path = directory / f"{index:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def specs(name: str, n: int, *, count: int = 3, rows: int = 16) -> list[SeriesSpec]:
    """``n`` series of ``count`` small CT instances, each in its own study."""
    return [
        replace(dicomgen.study(f"{name}-{i}", [count])[0], rows=rows, columns=rows)
        for i in range(n)
    ]
