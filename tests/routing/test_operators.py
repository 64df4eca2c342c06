"""Every condition operator, positive and negative, with the failure text a user reads."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import facts, route

AXIAL = ["ORIGINAL", "PRIMARY", "AXIAL"]
LOCALIZER = ["ORIGINAL", "PRIMARY", "LOCALIZER"]

# (id, when, facts keyword arguments, expected failure text or None for a match)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = [
    # equality
    ("eq", {"Modality": "CT"}, {"Modality": "CT"}, None),
    ("eq-other", {"Modality": "CT"}, {"Modality": "MR"}, "Modality: expected 'CT', got 'MR'"),
    ("eq-case", {"Modality": "ct"}, {"Modality": "CT"}, None),
    ("eq-case-value", {"BodyPartExamined": "CHEST"}, {"BodyPartExamined": "Chest"}, None),
    ("eq-padding-space", {"Modality": "CT"}, {"Modality": "CT "}, None),
    ("eq-padding-nul", {"PatientSex": "F"}, {"PatientSex": "F\x00"}, None),
    ("eq-padding-config", {"Modality": " CT "}, {"Modality": "CT"}, None),
    ("eq-no-prefix", {"Modality": "C"}, {"Modality": "CT"}, "Modality: expected 'C', got 'CT'"),
    ("eq-number-ds", {"SliceThickness": 3}, {"SliceThickness": "3.0"}, None),
    ("eq-float-is", {"SeriesNumber": 4.0}, {"SeriesNumber": 4}, None),
    (
        "eq-number-other",
        {"SliceThickness": 3},
        {"SliceThickness": "3.5"},
        "SliceThickness: expected 3, got 3.5",
    ),
    ("eq-text-numeric-vr", {"SliceThickness": "3"}, {"SliceThickness": "3.00"}, None),
    (
        "eq-text-uid-not-numeric",
        {"FrameOfReferenceUID": "1.2"},
        {"FrameOfReferenceUID": "1.20"},
        "FrameOfReferenceUID: expected '1.2', got '1.20'",
    ),
    (
        "eq-number-vs-text",
        {"BodyPartExamined": 3},
        {"BodyPartExamined": "CHEST"},
        "BodyPartExamined: expected 3, got 'CHEST'",
    ),
    ("eq-date-as-number", {"StudyDate": 20240315}, {"StudyDate": "20240315"}, None),
    (
        "eq-absent",
        {"BodyPartExamined": "CHEST"},
        {},
        "BodyPartExamined: absent (expected 'CHEST')",
    ),
    (
        "eq-empty-is-absent",
        {"BodyPartExamined": "CHEST"},
        {"BodyPartExamined": ""},
        "BodyPartExamined: absent (expected 'CHEST')",
    ),
    (
        "eq-code-is-text",
        {"SeriesDescription": "__import__('os').getcwd()"},
        {"SeriesDescription": "T1"},
        "SeriesDescription: expected '__import__('os').getcwd()', got 'T1'",
    ),
    # sets
    ("in", {"BodyPartExamined": ["CHEST", "LUNG"]}, {"BodyPartExamined": "LUNG"}, None),
    ("in-case", {"BodyPartExamined": ["CHEST", "LUNG"]}, {"BodyPartExamined": "lung"}, None),
    (
        "in-other",
        {"BodyPartExamined": ["CHEST", "LUNG"]},
        {"BodyPartExamined": "HEAD"},
        "BodyPartExamined: expected one of 'CHEST', 'LUNG', got 'HEAD'",
    ),
    ("in-numbers", {"SliceThickness": [1, 2.5]}, {"SliceThickness": "2.5"}, None),
    (
        "in-absent",
        {"BodyPartExamined": ["CHEST", "LUNG"]},
        {},
        "BodyPartExamined: absent (expected one of 'CHEST', 'LUNG')",
    ),
    # regex
    ("re", {"SeriesDescription": {"regex": "flair"}}, {"SeriesDescription": "Ax T2 FLAIR"}, None),
    (
        "re-inline-flag",
        {"SeriesDescription": {"regex": "(?i)FLAIR"}},
        {"SeriesDescription": "flair"},
        None,
    ),
    (
        "re-other",
        {"SeriesDescription": {"regex": "flair"}},
        {"SeriesDescription": "Ax T1"},
        "SeriesDescription: expected regex 'flair', got 'Ax T1'",
    ),
    (
        "re-anchored",
        {"SeriesDescription": {"regex": "^ax"}},
        {"SeriesDescription": "sag ax"},
        "SeriesDescription: expected regex '^ax', got 'sag ax'",
    ),
    (
        "re-search",
        {"SeriesDescription": {"regex": "t1.*(post|gd|c)"}},
        {"SeriesDescription": "AX T1 POST"},
        None,
    ),
    ("re-number", {"SliceThickness": {"regex": r"^5(\.0)?$"}}, {"SliceThickness": "5.0"}, None),
    (
        "re-absent",
        {"SeriesDescription": {"regex": "."}},
        {},
        "SeriesDescription: absent (expected regex '.')",
    ),
    # ranges
    ("max-inclusive", {"SliceThickness": {"max": 3.0}}, {"SliceThickness": "3.0"}, None),
    (
        "max-over",
        {"SliceThickness": {"max": 3.0}},
        {"SliceThickness": "5.0"},
        "SliceThickness: expected <= 3.0, got 5.0",
    ),
    ("min-inclusive", {"SliceThickness": {"min": 1}}, {"SliceThickness": "1"}, None),
    (
        "min-under",
        {"SliceThickness": {"min": 1}},
        {"SliceThickness": "0.5"},
        "SliceThickness: expected >= 1, got 0.5",
    ),
    ("between-low", {"SliceThickness": {"min": 1, "max": 3}}, {"SliceThickness": "1"}, None),
    ("between-high", {"SliceThickness": {"min": 1, "max": 3}}, {"SliceThickness": "3"}, None),
    (
        "between-out",
        {"SliceThickness": {"min": 1, "max": 3}},
        {"SliceThickness": "3.01"},
        "SliceThickness: expected between 1 and 3, got 3.01",
    ),
    ("range-negative", {"SliceLocation": {"min": -10, "max": 0}}, {"SliceLocation": "-2.5"}, None),
    (
        "range-not-a-number",
        {"SeriesDescription": {"max": 3}},
        {"SeriesDescription": "abc"},
        "SeriesDescription: expected <= 3, got 'abc'",
    ),
    ("range-number-text", {"StudyDate": {"min": 20240101}}, {"StudyDate": "20240315"}, None),
    (
        "range-absent",
        {"SliceThickness": {"max": 3}},
        {},
        "SliceThickness: absent (expected <= 3)",
    ),
    ("range-every-value", {"PixelSpacing": {"max": 1.0}}, {"PixelSpacing": [0.7, 0.7]}, None),
    (
        "range-every-value-fails",
        {"PixelSpacing": {"max": 1.0}},
        {"PixelSpacing": [0.7, 1.2]},
        "PixelSpacing: expected <= 1.0, got 0.7\\1.2",
    ),
    # presence
    ("present", {"ContrastBolusAgent": {"present": True}}, {"ContrastBolusAgent": "GADO"}, None),
    (
        "present-absent",
        {"ContrastBolusAgent": {"present": True}},
        {},
        "ContrastBolusAgent: absent (expected present)",
    ),
    (
        "present-empty",
        {"ContrastBolusAgent": {"present": True}},
        {"ContrastBolusAgent": ""},
        "ContrastBolusAgent: absent (expected present)",
    ),
    ("absent", {"ContrastBolusAgent": {"present": False}}, {}, None),
    ("absent-empty", {"ContrastBolusAgent": {"present": False}}, {"ContrastBolusAgent": ""}, None),
    (
        "absent-present",
        {"ContrastBolusAgent": {"present": False}},
        {"ContrastBolusAgent": "GADO"},
        "ContrastBolusAgent: expected absent, got 'GADO'",
    ),
    ("present-sequence", {"ReferencedImageSequence": {"present": False}}, {}, None),
    # negation
    ("not", {"ImageType": {"not": "LOCALIZER"}}, {"ImageType": AXIAL}, None),
    (
        "not-fails",
        {"ImageType": {"not": "LOCALIZER"}},
        {"ImageType": LOCALIZER},
        "ImageType: expected not 'LOCALIZER', got 'ORIGINAL\\PRIMARY\\LOCALIZER'",
    ),
    ("not-absent", {"BodyPartExamined": {"not": "HEAD"}}, {}, None),
    (
        "not-regex",
        {"SeriesDescription": {"not": {"regex": "scout|loc"}}},
        {"SeriesDescription": "T1"},
        None,
    ),
    (
        "not-regex-fails",
        {"SeriesDescription": {"not": {"regex": "scout|loc"}}},
        {"SeriesDescription": "Scout 3pl"},
        "SeriesDescription: expected not regex 'scout|loc', got 'Scout 3pl'",
    ),
    ("not-range", {"SliceThickness": {"not": {"min": 5}}}, {"SliceThickness": "2"}, None),
    ("not-present", {"ContrastBolusAgent": {"not": {"present": True}}}, {}, None),
    ("not-not", {"Modality": {"not": {"not": "CT"}}}, {"Modality": "CT"}, None),
    (
        "not-not-fails",
        {"Modality": {"not": {"not": "CT"}}},
        {"Modality": "MR"},
        "Modality: expected not not 'CT', got 'MR'",
    ),
    ("not-in", {"Modality": {"not": ["SR", "PR"]}}, {"Modality": "CT"}, None),
    # multi-valued attributes
    ("multi-eq", {"ImageType": "AXIAL"}, {"ImageType": AXIAL}, None),
    ("multi-eq-case", {"ImageType": "axial"}, {"ImageType": AXIAL}, None),
    (
        "multi-eq-fails",
        {"ImageType": "DERIVED"},
        {"ImageType": AXIAL},
        "ImageType: expected 'DERIVED', got 'ORIGINAL\\PRIMARY\\AXIAL'",
    ),
    ("multi-in", {"ImageType": ["LOCALIZER", "AXIAL"]}, {"ImageType": AXIAL}, None),
    ("multi-regex", {"ImageType": {"regex": "^LOCALIZER$"}}, {"ImageType": LOCALIZER}, None),
    (
        "multi-regex-fails",
        {"ImageType": {"regex": "^LOC$"}},
        {"ImageType": LOCALIZER},
        "ImageType: expected regex '^LOC$', got 'ORIGINAL\\PRIMARY\\LOCALIZER'",
    ),
    # instances
    ("instances-min", {"instances": {"min": 40}}, {"instances": 50}, None),
    ("instances-min-equal", {"instances": {"min": 40}}, {"instances": 40}, None),
    (
        "instances-min-fails",
        {"instances": {"min": 40}},
        {"instances": 30},
        "instances: expected >= 40, got 30",
    ),
    ("instances-eq", {"instances": 4}, {"instances": 4}, None),
    ("instances-in", {"instances": [1, 4]}, {"instances": 4}, None),
    (
        "instances-max-fails",
        {"instances": {"max": 1}},
        {"instances": 2},
        "instances: expected <= 1, got 2",
    ),
    ("instances-not", {"instances": {"not": {"max": 9}}}, {"instances": 10}, None),
    # calling_ae
    ("ae", {"calling_ae": "PACS1"}, {"calling_ae": "PACS1"}, None),
    ("ae-case", {"calling_ae": "PACS1"}, {"calling_ae": "pacs1"}, None),
    ("ae-padding", {"calling_ae": "PACS1"}, {"calling_ae": "PACS1  "}, None),
    (
        "ae-other",
        {"calling_ae": "PACS1"},
        {"calling_ae": "MODALITY"},
        "calling_ae: expected 'PACS1', got 'MODALITY'",
    ),
    ("ae-unknown", {"calling_ae": "PACS1"}, {}, "calling_ae: absent (expected 'PACS1')"),
    ("ae-in", {"calling_ae": ["PACS1", "PACS2"]}, {"calling_ae": "PACS2"}, None),
    ("ae-regex", {"calling_ae": {"regex": "^CT"}}, {"calling_ae": "CT_SCANNER_2"}, None),
    ("ae-not", {"calling_ae": {"not": "TEST"}}, {"calling_ae": "PACS1"}, None),
    ("ae-absent", {"calling_ae": {"present": False}}, {}, None),
    # several conditions: all must hold, the first failure in config order is reported
    ("empty-when", {}, {"Modality": "CT"}, None),
    (
        "first-failure",
        {"Modality": "CT", "SliceThickness": {"max": 3}},
        {"Modality": "MR", "SliceThickness": "5"},
        "Modality: expected 'CT', got 'MR'",
    ),
    (
        "first-failure-order",
        {"SliceThickness": {"max": 3}, "Modality": "CT"},
        {"Modality": "MR", "SliceThickness": "5"},
        "SliceThickness: expected <= 3, got 5",
    ),
    (
        "design-chest-ct",
        {
            "Modality": "CT",
            "BodyPartExamined": ["CHEST", "LUNG", "THORAX"],
            "SliceThickness": {"max": 3.0},
            "instances": {"min": 40},
        },
        {"Modality": "CT", "BodyPartExamined": "CHEST", "SliceThickness": "1.25", "instances": 120},
        None,
    ),
]


# non-conformant values ('Chest' in a CS, a NUL pad) are what vendors send: the point of the test
@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
@pytest.mark.parametrize(
    ("when", "attributes", "failure"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_operator(when: dict[str, Any], attributes: dict[str, Any], failure: str | None) -> None:
    match = route(when).match(facts(**attributes))
    assert match.matched is (failure is None)
    assert match.reason == failure
    assert (str(match.failure) if match.failure else None) == failure


def test_failure_is_structured() -> None:
    match = route({"SliceThickness": {"max": 3.0}}).match(facts(SliceThickness="5.0"))
    assert match.failure is not None
    assert (match.failure.key, match.failure.expected, match.failure.actual) == (
        "SliceThickness",
        "<= 3.0",
        "5.0",
    )
    absent = route({"BodyPartExamined": "CHEST"}).match(facts())
    assert absent.failure is not None
    assert absent.failure.actual is None


def test_inputs_of_series_facts_are_checked() -> None:
    with pytest.raises(ValueError, match="instances"):
        facts(instances=-1)


def test_facts_repr_has_no_patient_identifiers() -> None:
    series = facts(PatientName="Doe^Jane", PatientID="PID-SECRET-42")
    assert "Doe" not in repr(series)
    assert "PID-SECRET" not in repr(series)


@pytest.mark.parametrize(
    ("when", "attributes", "failure"),
    [
        (
            {"PatientID": "PID-1"},
            {"PatientID": "PID-SECRET-42"},
            "PatientID: expected <hidden>, got <hidden>",
        ),
        (
            {"PatientName": {"regex": "^doe"}},
            {"PatientName": "Roe^Jane"},
            "PatientName: expected <hidden>, got <hidden>",
        ),
        ({"PatientID": {"present": True}}, {}, "PatientID: absent (expected <hidden>)"),
    ],
)
def test_patient_identifiers_are_never_shown(
    when: dict[str, Any], attributes: dict[str, Any], failure: str
) -> None:
    assert route(when).match(facts(**attributes)).reason == failure


def test_patient_identifier_conditions_still_match() -> None:
    assert route({"PatientID": {"regex": "^PID-"}}).match(facts(PatientID="PID-SECRET-42")).matched
