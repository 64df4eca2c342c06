"""``notify:`` is validated at start-up with messages naming the key; conditions are data."""

from __future__ import annotations

import pytest

from dicomnode.config import parse_config
from dicomnode.errors import ConfigError
from dicomnode.notify import FindingCondition, FindingsSummary

ROUTE = {"name": "ct", "pipeline": "lung_nodule", "when": {"Modality": "CT"}, "shadow": True}


def _config(hook: dict[str, object]):
    return parse_config({"routes": [ROUTE], "notify": {"webhooks": {"ris": hook}}})


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ({"url": "ftp://ris/x", "events": ["job.dead"]}, "url must start with http:// or https://"),
        ({"url": "https://", "events": ["job.dead"]}, "url has no host"),
        ({"url": "https://u:p@ris/x", "events": ["job.dead"]}, "must not hold credentials"),
        ({"url": "https://ris/x", "events": []}, "events"),
        ({"url": "https://ris/x", "events": ["job.late"]}, "events[0]: Input should be"),
        ({"url": "https://ris/x", "events": ["job.dead"], "secret": "short"}, "secret"),
        ({"url": "https://ris/x", "events": ["job.dead"], "routes": ["mr"]}, "unknown route 'mr'"),
        (
            {
                "url": "https://ris/x",
                "events": ["job.dead"],
                "findings": [{"kind": "lung_nodule"}],
            },
            "need the findings event",
        ),
        (
            {
                "url": "https://ris/x",
                "events": ["findings"],
                "findings": [{"kind": "lung_nodule", "min_score": 2}],
            },
            "min_score",
        ),
        (
            {"url": "https://ris/x", "events": ["findings"], "findings": [{"kind": "tumour"}]},
            "kind",
        ),
    ],
)
def test_bad_webhooks_are_refused_naming_the_key(hook, message):
    with pytest.raises(ConfigError) as err:
        _config(hook)
    assert "notify.webhooks.ris" in str(err.value)
    assert message in str(err.value)


def test_a_good_webhook_and_its_defaults():
    cfg = _config({"url": "https://ris.example/hook", "events": ["job.dead"], "routes": ["ct"]})
    hook = cfg.notify.webhooks["ris"]
    assert hook.include_identifiers is False and hook.secret is None
    assert cfg.notify.max_attempts >= 1 and cfg.notify.timeout > 0


def test_conditions_hold_on_one_finding_with_every_minimum():
    summary = FindingsSummary.from_documents(
        [
            {
                "kinds": ["lung_nodule", "brain_lesion"],
                "regions": [
                    {"kind": "lung_nodule", "diameter_mm": 9.0, "score": 0.2},
                    {"kind": "lung_nodule", "diameter_mm": 5.0, "score": 0.8},
                ],
                "masks": [{"kind": "brain_lesion", "array": {"shape": [2, 2, 2], "nonzero": 3}}],
            }
        ]
    )
    nodule = FindingCondition(kind="lung_nodule", min_diameter_mm=8)
    assert summary.meets(nodule)
    # large and confident are two different nodules: no single one meets both
    assert not summary.meets(nodule.model_copy(update={"min_score": 0.5}))
    assert not summary.meets(FindingCondition(kind="lung_nodule", min_volume_ml=0.1))
    assert summary.meets(FindingCondition(kind="brain_lesion"))  # a non-empty mask
    assert not summary.meets(FindingCondition(kind="brain_lesion", min_volume_ml=0))
    assert summary.as_json()["lung_nodule"] == {
        "count": 2,
        "max_diameter_mm": 9.0,
        "max_volume_ml": None,
        "max_score": 0.8,
        "mask_voxels": 0,
    }
    assert summary.as_json()["brain_lesion"]["count"] == 0
