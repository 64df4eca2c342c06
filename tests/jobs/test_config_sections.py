"""The config sections of the job engine: destinations, routes, workers, export, pipelines."""

from __future__ import annotations

import pytest

from dicomnode.config import parse_config
from dicomnode.config.schema import DicomDestination, StowDestination
from dicomnode.errors import ConfigError

TOY = "testkit.toy_pipeline:ToyPipeline"
PACS = {"ae_title": "PACS1", "host": "10.0.0.5", "port": 104}


def test_a_full_example_parses():
    config = parse_config(
        {
            "node": {"uid_root": "1.2.826.0.1.3680043.10.1"},
            "workers": {"count": 2, "device": "cuda", "lease_seconds": 120},
            "destinations": {"pacs": PACS, "web": {"url": "https://pacs.example/dicom-web"}},
            "pipelines": {"toy": {"class": TOY, "threshold": 0.5, "outputs": ["sr"]}},
            "routes": [
                {"name": "ct", "pipeline": "toy", "when": {"Modality": "CT"}, "send_to": ["pacs"]},
                {"name": "mr", "pipeline": "toy", "level": "study", "shadow": True},
            ],
        }
    )
    assert isinstance(config.destinations["pacs"], DicomDestination)
    assert isinstance(config.destinations["web"], StowDestination)
    assert config.pipelines["toy"].class_path == TOY
    assert config.pipelines["toy"].options == {"threshold": 0.5, "outputs": ["sr"]}
    assert [r.name for r in config.routes] == ["ct", "mr"]


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        (
            {"destinations": {"pacs": {"ae_title": "P", "host": "h"}}},
            "destinations.pacs.port",
            "Field required",
        ),
        (
            {"destinations": {"pacs": {**PACS, "aet": "x"}}},
            "destinations.pacs.aet",
            "unknown key (allowed: ae_title, calling_ae_title, host, port, tls)",
        ),
        ({"destinations": {"web": {"url": "ftp://x"}}}, "destinations.web.url", "https?"),
        (
            {"pipelines": {"toy": {"class": "toy.py"}}},
            "pipelines.toy.class",
            "expected package.module:Class",
        ),
        ({"pipelines": {"toy": {"outputs": ["pdf"]}}}, "pipelines.toy.outputs[0]", "'sr'"),
        (
            {"workers": {"lease_seconds": 5, "heartbeat_seconds": 10}},
            "workers",
            "lease_seconds (5.0) must be > heartbeat_seconds (10.0)",
        ),
        ({"workers": {"device": "tpu"}}, "workers.device", "'auto', 'cpu' or 'cuda'"),
        ({"workers": {"cnt": 1}}, "workers.cnt", "unknown key (allowed: backoff_seconds"),
        ({"node": {"uid_root": "1.2.abc"}}, "node.uid_root", "pattern"),
        (
            {"routes": [{"name": "r", "pipeline": "nope", "shadow": True}]},
            "routes[0] (r)",
            "pipeline: unknown pipeline 'nope'",
        ),
        (
            {
                "pipelines": {"toy": {"class": TOY}},
                "routes": [{"name": "r", "pipeline": "toy", "send_to": ["pacs"]}],
            },
            "routes[0] (r)",
            "send_to[0]: unknown destination 'pacs' (known: none configured)",
        ),
        (
            {"routes": [{"name": "r", "pipeline": "x", "when": {"Modality": {"regex": "("}}}]},
            "routes[0]",
            "bad regex",
        ),
    ],
)
def test_bad_sections_name_the_key(data, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(data, source="node.yaml")
    assert err.value.key == key, str(err.value)
    assert words in err.value.message, str(err.value)
    assert "\n" not in str(err.value)
