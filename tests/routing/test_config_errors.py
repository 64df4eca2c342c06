"""Route validation and compilation: every error names the route, the key and the fix."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from dicomnode.errors import ConfigError
from dicomnode.routing import Level, Output, RouteSpec, compile_routes

from .helpers import facts


def _route(**fields: Any) -> dict[str, Any]:
    return {"name": "brain-flair", "pipeline": "brain_lesion", "send_to": ["pacs"], **fields}


def _error(specs: list[Any], **known: Any) -> str:
    with pytest.raises(ConfigError) as info:
        compile_routes(specs, **known)
    return str(info.value)


OK = {"name": "chest", "pipeline": "lung_nodule", "send_to": ["pacs"], "when": {"Modality": "CT"}}

# (id, the route's fields, expected error text of routes[1])
ERRORS: list[tuple[str, dict[str, Any], str]] = [
    (
        "bad-regex",
        {"when": {"SeriesDescription": {"regex": "("}}},
        "routes[1] (brain-flair): when.SeriesDescription: bad regex '(': "
        "missing ), unterminated subpattern",
    ),
    (
        "unknown-keyword",
        {"when": {"SeriesDesc": "FLAIR"}},
        "routes[1] (brain-flair): when.SeriesDesc: unknown DICOM keyword 'SeriesDesc' "
        "(did you mean 'SeriesDescription'?)",
    ),
    (
        "unknown-keyword-typo",
        {"when": {"Modalty": "MR"}},
        "routes[1] (brain-flair): when.Modalty: unknown DICOM keyword 'Modalty' "
        "(did you mean 'Modality'?)",
    ),
    (
        "unknown-keyword-in-input",
        {"level": "study", "inputs": {"flair": {"SeriesDescr": {"regex": "flair"}}}},
        "routes[1] (brain-flair): inputs.flair.SeriesDescr: unknown DICOM keyword 'SeriesDescr' "
        "(did you mean 'SeriesDescription'?)",
    ),
    ("unknown-route-key", {"sendto": ["pacs"]}, "routes[1] (brain-flair): sendto: unknown key"),
    (
        "unknown-condition-key",
        {"when": {"SliceThickness": {"maximum": 3}}},
        "routes[1] (brain-flair): when.SliceThickness: not a condition: use a value, a list, "
        "{regex: ...}, {min: ..., max: ...}, {present: true|false} or {not: ...}",
    ),
    (
        "extra-key-in-condition",
        {"when": {"SliceThickness": {"max": 3, "unit": "mm"}}},
        "routes[1] (brain-flair): when.SliceThickness.unit: unknown key",
    ),
    (
        "boolean-value",
        {"when": {"Modality": True}},
        "routes[1] (brain-flair): when.Modality: true is not a DICOM value; quote it if you "
        "mean the text (YAML reads yes/no/on/off as true/false)",
    ),
    (
        "range-text-bound",
        {"when": {"SliceThickness": {"max": "3mm"}}},
        "routes[1] (brain-flair): when.SliceThickness.max: expected a number, got '3mm'",
    ),
    (
        "range-no-bound",
        {"when": {"SliceThickness": {"min": None}}},
        "routes[1] (brain-flair): when.SliceThickness: a range needs min, max or both",
    ),
    (
        "range-inverted",
        {"when": {"SliceThickness": {"min": 5, "max": 1}}},
        "routes[1] (brain-flair): when.SliceThickness: min (5) is above max (1)",
    ),
    (
        "present-not-bool",
        {"when": {"Modality": {"not": {"present": "yes"}}}},
        "routes[1] (brain-flair): when.Modality.not.present: Input should be a valid boolean",
    ),
    (
        "empty-list",
        {"when": {"Modality": []}},
        "routes[1] (brain-flair): when.Modality: List should have at least 1 item after "
        "validation, not 0",
    ),
    (
        "sequence-value",
        {"when": {"ReferencedImageSequence": "x"}},
        "routes[1] (brain-flair): when.ReferencedImageSequence: ReferencedImageSequence has VR "
        "SQ, whose values cannot be compared; only {present: true|false} applies",
    ),
    (
        "inputs-on-series-level",
        {"inputs": {"flair": {}}},
        "routes[1] (brain-flair): inputs: named inputs need level: study",
    ),
    (
        "no-destination",
        {"send_to": []},
        "routes[1] (brain-flair): send_to: name at least one destination, or set shadow: true",
    ),
    (
        "repeated-destination",
        {"send_to": ["pacs", "pacs"]},
        "routes[1] (brain-flair): send_to: lists 'pacs' more than once",
    ),
    (
        "bad-level",
        {"level": "patient"},
        "routes[1] (brain-flair): level: Input should be 'series' or 'study'",
    ),
    (
        "bad-output",
        {"outputs": ["sr", "pdf"]},
        "routes[1] (brain-flair): outputs.1: Input should be 'sr', 'seg' or 'summary'",
    ),
    (
        "bad-name",
        {"name": "brain flair"},
        "routes[1] (brain flair): name: 'brain flair': a route name is letters, digits, '.', '_' "
        "or '-', starting with a letter or digit",
    ),
]


@pytest.mark.parametrize(("fields", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_invalid_route(fields: dict[str, Any], message: str) -> None:
    assert _error([OK, _route(**fields)]) == message


def test_error_carries_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        compile_routes([OK, _route(when={"SeriesDescription": {"regex": "("}})])
    assert info.value.key == "routes[1] (brain-flair)"
    assert info.value.message.startswith("when.SeriesDescription: bad regex")


def test_unnamed_route() -> None:
    assert _error([{"pipeline": "p", "send_to": ["pacs"]}]) == "routes[0]: name: Field required"


def test_route_is_not_a_mapping() -> None:
    assert _error([["Modality", "CT"]]) == (
        "routes[0]: a route is a mapping (name, pipeline, when, ...), got list"
    )


def test_unknown_pipeline() -> None:
    message = _error([OK, _route()], pipelines={"lung_nodule", "mammo_score"})
    assert message == (
        "routes[1] (brain-flair): pipeline: unknown pipeline 'brain_lesion' "
        "(known: lung_nodule, mammo_score)"
    )


def test_unknown_destination() -> None:
    message = _error([OK, _route(send_to=["pacs", "archive"])], destinations={"pacs"})
    assert message == (
        "routes[1] (brain-flair): send_to[1]: unknown destination 'archive' (known: pacs)"
    )


def test_no_destinations_configured() -> None:
    message = _error([OK], destinations=set())
    assert (
        message
        == "routes[0] (chest): send_to[0]: unknown destination 'pacs' (known: none configured)"
    )


def test_duplicate_name() -> None:
    message = _error([OK, _route(), {**OK, "pipeline": "other"}])
    assert message == (
        "routes[2] (chest): name: 'chest' is already the name of routes[0]; "
        "route names must be unique"
    )


def test_known_references_pass() -> None:
    routes = compile_routes(
        [OK, _route()], pipelines=["lung_nodule", "brain_lesion"], destinations=["pacs"]
    )
    assert [r.name for r in routes] == ["chest", "brain-flair"]


def test_shadow_route_needs_no_destination() -> None:
    (route,) = compile_routes([_route(send_to=[], shadow=True)])
    assert route.shadow and route.send_to == ()


def test_presence_on_a_sequence_is_allowed() -> None:
    (route,) = compile_routes(
        [_route(when={"ReferencedImageSequence": {"not": {"present": True}}})]
    )
    assert route.match(facts()).matched


def test_embedded_in_a_config_model_names_the_route() -> None:
    """A config loader that declares ``routes: list[RouteSpec]`` gets route-named errors."""

    class Config(BaseModel):
        routes: list[RouteSpec]

    with pytest.raises(ValidationError) as info:
        Config.model_validate({"routes": [OK, _route(when={"Modality": {"regex": "("}})]})
    (error,) = info.value.errors()
    assert error["loc"] == ("routes", 1)
    assert (
        error["msg"]
        == "route 'brain-flair': when.Modality: bad regex '(': missing ), unterminated subpattern"
    )


def test_specs_and_mappings_compile_alike() -> None:
    spec = RouteSpec.model_validate(_route(when={"Modality": "MR"}))
    assert compile_routes([spec]) == compile_routes([_route(when={"Modality": "MR"})])


DESIGN_ROUTES = """
routes:
  - name: chest-ct-nodules
    pipeline: lung_nodule
    when: {Modality: CT, BodyPartExamined: [CHEST, LUNG, THORAX], SliceThickness: {max: 3.0},
           instances: {min: 40}}
    send_to: [pacs]
  - name: brain-flair-lesions
    pipeline: brain_lesion
    when: {Modality: MR, SeriesDescription: {regex: "(?i)flair"}}
    send_to: [pacs]
  - name: screening-mammo
    pipeline: mammo_score
    level: study                      # waits for the whole study (4 views)
    when: {Modality: MG}
    send_to: [pacs]
    outputs: [sr, summary]
"""


def test_design_example_compiles() -> None:
    raw = yaml.safe_load(DESIGN_ROUTES)["routes"]
    routes = compile_routes(
        raw, pipelines={"lung_nodule", "brain_lesion", "mammo_score"}, destinations={"pacs"}
    )
    chest, flair, mammo = routes
    assert [c.key for c in chest.when] == [
        "Modality",
        "BodyPartExamined",
        "SliceThickness",
        "instances",
    ]
    assert chest.when[0].tag == 0x00080060 and chest.when[3].tag is None
    assert chest.level is Level.SERIES and chest.outputs is None and not chest.shadow
    assert flair.pipeline == "brain_lesion" and flair.send_to == ("pacs",)
    assert mammo.level is Level.STUDY and mammo.outputs == (Output.SR, Output.SUMMARY)
