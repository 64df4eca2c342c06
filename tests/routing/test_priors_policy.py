"""A route's ``priors:`` policy: parsed, defaulted, and every error names the route and key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dicomnode.config.schema import Config, RetrieveMethod
from dicomnode.routing import RouteSpec
from dicomnode.routing.schema import lookback_days

SOURCE = {"ae_title": "PACS", "host": "127.0.0.1", "port": 104}


def _route(**priors: Any) -> dict[str, Any]:
    return {
        "name": "chest",
        "pipeline": "lung_nodule",
        "send_to": ["pacs"],
        "when": {"Modality": "CT"},
        "priors": {"from": ["pacs"], **priors},
    }


def _config(route: dict[str, Any], sources: dict[str, Any] | None = None) -> Config:
    return Config.model_validate(
        {
            "sources": {"pacs": SOURCE} if sources is None else sources,
            "destinations": {"pacs": SOURCE},
            "routes": [route],
        }
    )


def test_defaults_and_sizes():
    policy = RouteSpec.model_validate(
        _route(modality="CT", when={"BodyPartExamined": ["CHEST", "LUNG"]}, max_bytes="500MB")
    ).priors
    assert policy is not None
    assert (policy.from_, policy.modality, policy.most_recent) == (["pacs"], "CT", 1)
    assert policy.lookback_days == 5 * 365 and policy.timeout == 120
    assert int(policy.max_bytes) == 500 * 10**6
    assert _config(_route()).sources["pacs"].retrieve is RetrieveMethod.MOVE


@pytest.mark.parametrize(("text", "days"), [("400d", 400), ("18m", 540), ("5y", 1825), ("2Y", 730)])
def test_lookback(text, days):
    assert lookback_days(text) == days


@pytest.mark.parametrize(
    ("priors", "expected"),
    [
        ({"lookback": "5 years"}, "priors.lookback: lookback '5 years': a positive number"),
        ({"lookback": "0d"}, "priors.lookback"),
        ({"most_recent": 0}, "priors.most_recent"),
        ({"timeout": 0}, "priors.timeout"),
        ({"when": {"SeriesDescr": "x"}}, "unknown DICOM keyword 'SeriesDescr'"),
        ({"when": {"PixelData": "x"}}, "priors.when.PixelData: PixelData has VR"),
        ({"whence": {}}, "priors.whence: unknown key"),
        ({"max_bytes": "lots"}, "priors.max_bytes"),
    ],
)
def test_policy_errors_name_route_and_key(priors, expected):
    with pytest.raises(ValidationError) as info:
        RouteSpec.model_validate(_route(**priors))
    assert "route 'chest'" in str(info.value) and expected in str(info.value)


def test_from_names_a_configured_source():
    with pytest.raises(ValidationError) as info:
        _config(_route(), sources={"other": SOURCE})
    assert "route 'chest': priors.from names 'pacs', not in sources (known: other)" in str(
        info.value
    )


def test_source_retrieve_method():
    config = _config(_route(), sources={"pacs": {**SOURCE, "retrieve": "get"}})
    assert config.sources["pacs"].retrieve is RetrieveMethod.GET
    with pytest.raises(ValidationError):
        _config(_route(), sources={"pacs": {**SOURCE, "retrieve": "wado"}})
