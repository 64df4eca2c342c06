"""Study-level routes: named inputs, the ambiguity rule, missing inputs, routes without inputs."""

from __future__ import annotations

from typing import Any

import pytest

from dicomnode.routing import Route, SeriesFacts

from .helpers import UID_ROOT, header, route

STUDY = f"{UID_ROOT}.7"

BRATS_INPUTS = {
    "t1c": {"SeriesDescription": {"regex": "t1.*(post|gd)"}},
    "t1": {"SeriesDescription": {"regex": "^t1(?!.*(post|gd))"}},
    "t2": {"SeriesDescription": {"regex": "^t2(?!.*flair)"}},
    "flair": {"SeriesDescription": {"regex": "flair"}},
}


def brats(**fields: Any) -> Route:
    return route({"Modality": "MR"}, level="study", inputs=BRATS_INPUTS, **fields)


def series(
    number: int, description: str, *, modality: str = "MR", instances: int = 20, study: str = STUDY
) -> SeriesFacts:
    ds = header(
        StudyInstanceUID=study,
        SeriesInstanceUID=f"{study}.{number}",
        SeriesNumber=number,
        Modality=modality,
        SeriesDescription=description,
    )
    return SeriesFacts.from_header(ds, instances=instances)


def brain_study() -> list[SeriesFacts]:
    return [
        series(1, "3-plane loc", instances=3),
        series(3, "T1 AX"),
        series(4, "T2 AX"),
        series(5, "T1 AX POST GD"),
        series(6, "AX T2 FLAIR"),
    ]


def test_named_inputs_each_select_one_series() -> None:
    match = brats().match_study(brain_study())
    assert match.matched and match.reason is None and match.study_uid == STUDY
    assert {name: f.series_number for name, f in match.inputs.items()} == {
        "t1c": 5,
        "t1": 3,
        "t2": 4,
        "flair": 6,
    }
    assert [f.series_number for f in match.series] == [5, 3, 4, 6]  # input order
    assert match.candidates["flair"] == (f"{STUDY}.6",)


def test_order_of_series_does_not_matter() -> None:
    forward = brats().match_study(brain_study())
    backward = brats().match_study(brain_study()[::-1])
    assert forward.inputs == backward.inputs


def test_ambiguity_takes_the_highest_series_number() -> None:
    study = [*brain_study(), series(9, "AX T2 FLAIR repeat", instances=10)]
    match = brats().match_study(study)
    assert match.matched
    assert match.inputs["flair"].series_number == 9
    assert match.candidates["flair"] == (f"{STUDY}.6", f"{STUDY}.9")


def test_ambiguity_then_most_instances() -> None:
    a = series(6, "FLAIR", instances=20)
    b = SeriesFacts.from_header(
        header(
            StudyInstanceUID=STUDY,
            SeriesInstanceUID=f"{STUDY}.66",
            SeriesNumber=6,
            Modality="MR",
            SeriesDescription="FLAIR",
        ),
        instances=30,
    )
    only_flair = route({}, level="study", inputs={"flair": BRATS_INPUTS["flair"]})
    assert only_flair.match_study([b, a]).inputs["flair"] is b
    assert only_flair.match_study([a, b]).inputs["flair"] is b


def test_ambiguity_without_series_number() -> None:
    a = SeriesFacts.from_header(
        header(SeriesInstanceUID=f"{STUDY}.1", SeriesDescription="FLAIR"), instances=5
    )
    b = SeriesFacts.from_header(
        header(SeriesInstanceUID=f"{STUDY}.2", SeriesDescription="FLAIR", SeriesNumber=1),
        instances=5,
    )
    only_flair = route({}, level="study", inputs={"flair": BRATS_INPUTS["flair"]})
    assert only_flair.match_study([b, a]).inputs["flair"] is b


def test_missing_input_is_named_with_the_closest_miss() -> None:
    study = [s for s in brain_study() if s.series_number != 6]
    match = brats().match_study(study)
    assert not match.matched
    assert match.missing_input == "flair"
    assert match.series == () and match.inputs == {}
    assert match.failure is not None and match.failure.key == "SeriesDescription"
    assert match.reason == (
        f"input 'flair': none of 4 series matches (closest …{STUDY[-6:]}.5 MR 'T1 AX POST GD': "
        "SeriesDescription: expected regex 'flair', got 'T1 AX POST GD')"
    )


def test_when_filters_the_series_of_inputs() -> None:
    study = [*[s for s in brain_study() if s.series_number != 6], series(7, "FLAIR", modality="CT")]
    match = brats().match_study(study)
    assert match.missing_input == "flair"
    assert match.reason is not None
    assert match.reason == (
        f"input 'flair': none of 5 series matches (closest …{STUDY[-6:]}.7 CT 'FLAIR': "
        "Modality: expected 'MR', got 'CT')"
    )


def test_two_inputs_selecting_one_series_do_not_match() -> None:
    loose = route(
        {"Modality": "MR"},
        level="study",
        inputs={"t1c": BRATS_INPUTS["t1c"], "t1": {"SeriesDescription": {"regex": "^t1"}}},
    )
    match = loose.match_study([series(5, "T1 AX POST GD")])
    assert not match.matched
    assert match.reason == (
        f"inputs 't1c' and 't1' both select …{STUDY[-6:]}.5 MR 'T1 AX POST GD'; "
        "make their conditions exclusive (e.g. with not:)"
    )


def test_study_route_without_inputs_takes_every_matching_series() -> None:
    mammo = route({"Modality": "MG"}, level="study")
    views = [
        series(n, view, modality="MG", instances=1)
        for n, view in enumerate(["LCC", "LMLO", "RCC", "RMLO"], 1)
    ]
    match = mammo.match_study([*views, series(9, "report", modality="SR", instances=1)])
    assert match.matched
    assert [f.description for f in match.series] == ["LCC", "LMLO", "RCC", "RMLO"]
    assert match.inputs == {}


def test_study_route_without_inputs_no_series() -> None:
    mammo = route({"Modality": "MG"}, level="study")
    match = mammo.match_study([series(2, "chest", modality="CT")])
    assert not match.matched and match.missing_input is None
    assert match.reason == (
        f"when: none of 1 series matches (closest …{STUDY[-6:]}.2 CT 'chest': "
        "Modality: expected 'MG', got 'CT')"
    )


def test_empty_study() -> None:
    match = route({"Modality": "MG"}, level="study").match_study([])
    assert not match.matched and match.study_uid is None
    assert match.reason == "the study has no series"


def test_match_study_refuses_series_routes_and_mixed_studies() -> None:
    with pytest.raises(ValueError, match="series-level"):
        route({"Modality": "MR"}).match_study(brain_study())
    with pytest.raises(ValueError, match="2 studies"):
        brats().match_study([series(1, "T1"), series(2, "T2", study=f"{UID_ROOT}.8")])


def test_match_on_a_study_route_tests_when_only() -> None:
    assert brats().match(series(1, "anything")).matched
    assert not brats().match(series(1, "anything", modality="CT")).matched
