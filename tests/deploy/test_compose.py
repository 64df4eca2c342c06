"""deploy/compose: the compose file validates against the Compose Specification's schema
(vendored in tests/deploy/schemas) and agrees with the node's config, which the node's own
loader accepts. Nothing here runs a container engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from dicomnode.api.browser import HostPolicy
from dicomnode.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
SCHEMA = Path(__file__).with_name("schemas") / "compose-spec.json"
#: ${NAME}, ${NAME:?message}, ${NAME:-default} (compose's interpolation)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_the_compose_file_validates_against_the_compose_spec():
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert list(validator.iter_errors(compose())) == []
    broken = compose()
    broken["services"]["dicomnode"]["readonly"] = True  # a misspelt key
    assert list(validator.iter_errors(broken)), "the schema check can fail"


def test_the_node_config_of_compose_loads_and_points_at_orthanc(tmp_path, monkeypatch):
    spec = compose()
    node = spec["services"]["dicomnode"]
    orthanc = spec["services"]["orthanc"]["environment"]
    (source,) = node["configs"]
    config_file = COMPOSE.parent / spec["configs"][source["source"]]["file"]
    assert node["command"] == ["serve", "-c", source["target"]]
    # the variables the config needs come from the service's environment
    needed = set(_VARIABLE.findall(config_file.read_text(encoding="utf-8")))
    assert needed and needed <= set(node["environment"])
    for name in needed:
        monkeypatch.setenv(name, "x" * 32)
    config, _ = load_config(config_file)
    assert config.data_dir == Path(node["volumes"][0].split(":")[1])
    destination = config.destinations["orthanc"]
    assert (destination.host, destination.port) == ("orthanc", int(orthanc["ORTHANC__DICOM_PORT"]))
    assert destination.ae_title == orthanc["ORTHANC__DICOM_AET"]
    modality = json.loads(orthanc["ORTHANC__DICOM_MODALITIES"])["dicomnode"]
    assert modality == [config.node.ae_title, "dicomnode", config.node.port]
    published = {p.rsplit(":", 1)[-1] for p in node["ports"]}
    assert {str(config.node.port), str(config.http.port)} <= published
    assert HostPolicy(config.http.allowed_hosts).allows("127.0.0.1")  # the image's HEALTHCHECK
    assert {r.pipeline for r in config.routes} == {"lung_nodule", "brain_lesion", "mammo_score"}


@pytest.mark.parametrize("service", ["dicomnode"])
def test_the_node_service_builds_the_containerfile_and_runs_locked_down(service):
    node = compose()["services"][service]
    assert (COMPOSE.parent / node["build"]["context"] / node["build"]["dockerfile"]).is_file()
    assert node["read_only"] is True and node["cap_drop"] == ["ALL"]
    assert "/tmp" in node["tmpfs"]
    user = re.search(r"^USER (\S+)", (ROOT / "Containerfile").read_text(), re.M)
    assert user is not None and node["user"] == user.group(1)
