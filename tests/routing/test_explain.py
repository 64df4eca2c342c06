"""``route explain`` on generated series written to a folder: rows, table and JSON."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from pydicom import Dataset

from dicomnode.routing import (
    ExplainRow,
    Level,
    Route,
    SeriesFacts,
    compile_routes,
    evaluate,
    explain,
    render_json,
    render_table,
    scan,
)

from .helpers import CT_IMAGE, MR_IMAGE, UID_ROOT, write_series

CHEST = f"{UID_ROOT}.100"
BRAIN = f"{UID_ROOT}.200"
SMALL = f"{UID_ROOT}.300"

ROUTES = """
- name: chest-ct-nodules
  pipeline: lung_nodule
  when: {Modality: CT, BodyPartExamined: [CHEST, LUNG, THORAX], SliceThickness: {max: 3.0},
         instances: {min: 40}}
  send_to: [pacs]
- name: brain-flair-lesions
  pipeline: brain_lesion
  when: {Modality: MR, SeriesDescription: {regex: "(?i)flair"}}
  send_to: [pacs]
- name: brain-tumour
  pipeline: brats
  level: study
  when: {Modality: MR}
  inputs:
    t1c: {SeriesDescription: {regex: "t1.*(post|gd)"}}
    t1: {SeriesDescription: {regex: "^t1(?!.*(post|gd))"}}
    t2: {SeriesDescription: {regex: "^t2(?!.*flair)"}}
    flair: {SeriesDescription: {regex: flair}}
  send_to: [pacs]
"""


def short(uid: str) -> str:
    return f"…{uid[-8:]}"


@pytest.fixture(scope="module")
def routes() -> list[Route]:
    return compile_routes(yaml.safe_load(ROUTES), destinations={"pacs"})


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("explain")
    ct = {"Modality": "CT", "BodyPartExamined": "CHEST", "sop_class": CT_IMAGE, "study": CHEST}
    write_series(
        root / "chest" / "3mm",
        series=f"{CHEST}.1",
        count=50,
        SeriesNumber=2,
        SeriesDescription="CT chest 3mm",
        SliceThickness=3.0,
        **ct,
    )
    write_series(
        root / "chest" / "5mm",
        series=f"{CHEST}.2",
        count=10,
        SeriesNumber=3,
        SeriesDescription="CT chest 5mm",
        SliceThickness=5.0,
        **ct,
    )
    for number, description in [
        (3, "T1 AX"),
        (4, "T2 AX"),
        (5, "T1 AX POST GD"),
        (6, "AX T2 FLAIR"),
    ]:
        write_series(
            root / "brain" / str(number),
            series=f"{BRAIN}.{number}",
            count=3,
            SeriesNumber=number,
            SeriesDescription=description,
            Modality="MR",
            sop_class=MR_IMAGE,
            study=BRAIN,
        )
    for number, description in [(2, "Sag FLAIR 3D"), (3, "T1 MPRAGE")]:
        write_series(
            root / "small",
            series=f"{SMALL}.{number}",
            count=1,
            SeriesNumber=number,
            SeriesDescription=description,
            Modality="MR",
            sop_class=MR_IMAGE,
            study=SMALL,
        )
        (root / "small" / "0001.dcm").rename(root / "small" / f"s{number}.dcm")
    # a copy of an instance already there (same SOP Instance UID) is not a new instance
    (root / "copies").mkdir()
    shutil.copy(root / "chest" / "3mm" / "0001.dcm", root / "copies" / "again.dcm")
    (root / "notes.txt").write_text("not DICOM\n")
    lonely = Dataset()
    lonely.SOPInstanceUID = f"{UID_ROOT}.999.1"
    lonely.SOPClassUID = CT_IMAGE
    lonely.save_as(
        root / "no-series.dcm", implicit_vr=True, little_endian=True, enforce_file_format=True
    )
    return root


NOT_CT = "no: Modality: expected 'CT', got 'MR'"
NOT_MR = "no: Modality: expected 'MR', got 'CT'"

# (subject, route, result), in the order explain reports them
EXPECTED = [
    (f"{short(CHEST + '.1')} CT CT chest 3mm", "chest-ct-nodules", "MATCH"),
    (f"{short(CHEST + '.1')} CT CT chest 3mm", "brain-flair-lesions", NOT_MR),
    (
        f"{short(CHEST + '.2')} CT CT chest 5mm",
        "chest-ct-nodules",
        "no: SliceThickness: expected <= 3.0, got 5.0",
    ),
    (f"{short(CHEST + '.2')} CT CT chest 5mm", "brain-flair-lesions", NOT_MR),
    (
        f"study {short(CHEST)} (2 series)",
        "brain-tumour",
        f"no: input 't1c': none of 2 series matches (closest {short(CHEST + '.2')} "
        "CT 'CT chest 5mm': SeriesDescription: expected regex 't1.*(post|gd)', got 'CT chest 5mm')",
    ),
    (f"{short(BRAIN + '.3')} MR T1 AX", "chest-ct-nodules", NOT_CT),
    (
        f"{short(BRAIN + '.3')} MR T1 AX",
        "brain-flair-lesions",
        "no: SeriesDescription: expected regex '(?i)flair', got 'T1 AX'",
    ),
    (f"{short(BRAIN + '.4')} MR T2 AX", "chest-ct-nodules", NOT_CT),
    (
        f"{short(BRAIN + '.4')} MR T2 AX",
        "brain-flair-lesions",
        "no: SeriesDescription: expected regex '(?i)flair', got 'T2 AX'",
    ),
    (f"{short(BRAIN + '.5')} MR T1 AX POST GD", "chest-ct-nodules", NOT_CT),
    (
        f"{short(BRAIN + '.5')} MR T1 AX POST GD",
        "brain-flair-lesions",
        "no: SeriesDescription: expected regex '(?i)flair', got 'T1 AX POST GD'",
    ),
    (f"{short(BRAIN + '.6')} MR AX T2 FLAIR", "chest-ct-nodules", NOT_CT),
    (f"{short(BRAIN + '.6')} MR AX T2 FLAIR", "brain-flair-lesions", "MATCH"),
    (
        f"study {short(BRAIN)} (4 series)",
        "brain-tumour",
        f"MATCH (t1c={short(BRAIN + '.5')}, t1={short(BRAIN + '.3')}, t2={short(BRAIN + '.4')}, "
        f"flair={short(BRAIN + '.6')})",
    ),
    (f"{short(SMALL + '.2')} MR Sag FLAIR 3D", "chest-ct-nodules", NOT_CT),
    (f"{short(SMALL + '.2')} MR Sag FLAIR 3D", "brain-flair-lesions", "MATCH"),
    (f"{short(SMALL + '.3')} MR T1 MPRAGE", "chest-ct-nodules", NOT_CT),
    (
        f"{short(SMALL + '.3')} MR T1 MPRAGE",
        "brain-flair-lesions",
        "no: SeriesDescription: expected regex '(?i)flair', got 'T1 MPRAGE'",
    ),
    (
        f"study {short(SMALL)} (2 series)",
        "brain-tumour",
        f"no: input 't1c': none of 2 series matches (closest {short(SMALL + '.3')} MR 'T1 MPRAGE': "
        "SeriesDescription: expected regex 't1.*(post|gd)', got 'T1 MPRAGE')",
    ),
]


def test_rows(tree: Path, routes: list[Route]) -> None:
    rows = explain(tree, routes)
    assert [(r.subject, r.route, r.result) for r in rows] == EXPECTED


def test_row_details(tree: Path, routes: list[Route]) -> None:
    rows = {(r.series_uid or r.study_uid, r.route): r for r in explain(tree, routes)}
    chest = rows[(f"{CHEST}.1", "chest-ct-nodules")]
    assert chest.matched and chest.reason is None and chest.instances == 50
    assert chest.level is Level.SERIES and chest.selected == (f"{CHEST}.1",)
    thick = rows[(f"{CHEST}.2", "chest-ct-nodules")]
    assert not thick.matched and thick.reason == "SliceThickness: expected <= 3.0, got 5.0"
    brain = rows[(BRAIN, "brain-tumour")]
    assert brain.matched and brain.series_uid is None and brain.series_count == 4
    assert brain.instances == 12
    assert dict(brain.inputs) == {
        "t1c": f"{BRAIN}.5",
        "t1": f"{BRAIN}.3",
        "t2": f"{BRAIN}.4",
        "flair": f"{BRAIN}.6",
    }


def test_scan(tree: Path) -> None:
    result = scan(tree)
    assert [(s.series_uid, s.instances) for s in result.series] == [
        (f"{CHEST}.1", 50),
        (f"{CHEST}.2", 10),
        (f"{BRAIN}.3", 3),
        (f"{BRAIN}.4", 3),
        (f"{BRAIN}.5", 3),
        (f"{BRAIN}.6", 3),
        (f"{SMALL}.2", 1),
        (f"{SMALL}.3", 1),
    ]
    assert all(s.header.InstanceNumber == 1 for s in result.series)  # the representative
    assert all("PixelData" not in s.header for s in result.series)
    assert [(f.path.name, f.reason) for f in result.skipped] == [
        ("no-series.dcm", "no SeriesInstanceUID/StudyInstanceUID"),
        ("notes.txt", "not DICOM"),
    ]


def test_scan_one_file_and_missing_path(tree: Path, routes: list[Route]) -> None:
    rows = explain(tree / "brain" / "6" / "0002.dcm", routes)
    assert [(r.route, r.result) for r in rows][1:] == [
        ("brain-flair-lesions", "MATCH"),
        (
            "brain-tumour",
            f"no: input 't1c': none of 1 series matches (closest {short(BRAIN + '.6')} "
            "MR 'AX T2 FLAIR': SeriesDescription: expected regex 't1.*(post|gd)', "
            "got 'AX T2 FLAIR')",
        ),
    ]
    assert rows[1].instances == 1
    with pytest.raises(FileNotFoundError):
        scan(tree / "missing")


def test_calling_ae(tree: Path) -> None:
    (route,) = compile_routes(
        [{"name": "from-pacs", "pipeline": "p", "shadow": True, "when": {"calling_ae": "PACS1"}}]
    )
    small = tree / "small"
    assert {r.result for r in explain(small, [route])} == {
        "no: calling_ae: absent (expected 'PACS1')"
    }
    assert {r.result for r in explain(small, [route], calling_ae="PACS1")} == {"MATCH (shadow)"}


def _table_rows(table: str) -> list[tuple[str, ...]]:
    return [tuple(re.split(r"\s{2,}", line, maxsplit=2)) for line in table.splitlines()]


def test_table(tree: Path, routes: list[Route]) -> None:
    result = scan(tree)
    table = render_table(evaluate(result.series, routes), skipped=len(result.skipped))
    lines = table.splitlines()
    assert table.endswith("\n")
    assert _table_rows(table)[0] == ("SERIES", "ROUTE", "RESULT")
    assert _table_rows(table)[1:-1] == EXPECTED
    assert lines[-1] == "2 files skipped (not DICOM, or no series UID)"
    # columns are aligned: the route column starts at the same place on every row
    starts = {line.index(route) for line, (_, route, _) in zip(lines[1:-1], EXPECTED, strict=True)}
    assert len(starts) == 1


def test_table_without_rows() -> None:
    assert render_table([]) == "no rows: no DICOM series found, or no routes configured\n"


def test_json(tree: Path, routes: list[Route]) -> None:
    result = scan(tree)
    document = json.loads(render_json(evaluate(result.series, routes), skipped=len(result.skipped)))
    assert document["skipped_files"] == 2
    rows = document["rows"]
    assert len(rows) == len(EXPECTED)
    assert [(r["route"], r["matched"]) for r in rows] == [
        (route, res.startswith("MATCH")) for _, route, res in EXPECTED
    ]
    assert rows[2] == {
        "route": "chest-ct-nodules",
        "pipeline": "lung_nodule",
        "level": "series",
        "study_uid": CHEST,
        "series_uid": f"{CHEST}.2",
        "modality": "CT",
        "series_description": "CT chest 5mm",
        "instances": 10,
        "series_count": 1,
        "matched": False,
        "reason": "SliceThickness: expected <= 3.0, got 5.0",
        "inputs": {},
        "selected": [],
        "shadow": False,
    }
    brain = rows[13]
    assert brain["level"] == "study" and brain["series_uid"] is None and brain["matched"]
    assert brain["inputs"]["flair"] == f"{BRAIN}.6"
    assert brain["selected"] == [f"{BRAIN}.5", f"{BRAIN}.3", f"{BRAIN}.4", f"{BRAIN}.6"]


def test_no_patient_identifiers_in_output(
    tree: Path, routes: list[Route], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    rows: list[ExplainRow] = explain(tree, routes)
    for text in (render_table(rows), render_json(rows), caplog.text, repr(rows), repr(scan(tree))):
        assert "Doe" not in text and "Jane" not in text and "PID-SECRET" not in text


# a description longer than LO allows, with a newline: what a broken file may hold
@pytest.mark.filterwarnings("ignore:The value length")
def test_table_is_one_line_per_row() -> None:
    (route,) = compile_routes(
        [{"name": "r", "pipeline": "p", "send_to": ["x"], "when": {"Modality": "CT"}}]
    )
    long = "AX T2\nFLAIR " + "x" * 80
    header = Dataset()
    header.Modality = "MR"
    header.SeriesDescription = long
    series = SeriesFacts(f"{UID_ROOT}.5", f"{UID_ROOT}.5.1", header, 3)
    table = render_table(evaluate([series], [route]))
    lines = table.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{short(UID_ROOT + '.5.1')} MR AX T2\\nFLAIR xxx")
    assert re.search(r"x…  r +no: Modality: expected 'CT', got 'MR'$", lines[1])
    assert len(lines[1].split("  ")[0]) == 48
