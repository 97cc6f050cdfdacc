"""deploy/ is validated here, with what runs on this machine (no Docker engine, no cluster):
prefect.yaml with Prefect's own models, the compose file with a JSON schema of the parts we
use plus cross-references, the Kubernetes manifests structurally (apiVersion/kind/metadata/
spec, images, ports, probes, Secret and ConfigMap references)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PLATFORMS = {"x", "facebook", "instagram", "linkedin", "mastodon", "bluesky"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# -- prefect.yaml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_yaml() -> dict[str, Any]:
    return _load(DEPLOY / "prefect.yaml")


def test_prefect_yaml_validates_with_prefects_own_models(prefect_yaml: dict[str, Any]) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers

    model = PrefectYamlModel.model_validate(prefect_yaml)
    assert model.prefect_version == "3.8.8"
    by_name = {d.name: d for d in model.deployments}
    assert {"monitor-fjell", "respond"} <= set(by_name)
    for dep in model.deployments:
        assert dep.work_pool is not None and dep.work_pool.name == "firebreak", dep.name
        module, _, func = (dep.entrypoint or "").partition(":")
        assert (ROOT / module).is_file() and f"def {func}(" in (ROOT / module).read_text(), dep.entrypoint
        # what `prefect deploy` does with the raw trigger dicts
        for trig in _initialize_deployment_triggers(dep.name or "", dep.triggers or []):
            assert trig.enabled


def test_monitor_is_scheduled_and_limited_respond_is_triggered(prefect_yaml: dict[str, Any]) -> None:
    from firebreak.flows.deployments import deployments
    from firebreak.tasks.intake import CRISIS_EVENT
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers

    deps = {d.name: d for d in PrefectYamlModel.model_validate(prefect_yaml).deployments}
    monitor = deps["monitor-fjell"]
    assert monitor.schedules and monitor.concurrency_limit is not None
    assert monitor.work_pool and "FIREBREAK_PLAYBOOK" in monitor.work_pool.job_variables["env"]
    # the engine started directly, not through a workspace supervisor process
    for dep in deps.values():
        assert dep.work_pool and dep.work_pool.job_variables.get("command") == "python -m prefect.engine", dep.name
    [trigger] = _initialize_deployment_triggers("respond", deps["respond"].triggers or [])
    assert trigger.expect == {CRISIS_EVENT}
    assert trigger.match.model_dump() == {"prefect.resource.id": "firebreak.incident.*"}
    assert trigger.parameters == {"incident_id": "{{ event.payload.incident_id }}"}
    # the same trigger as the served deployment (flows/deployments.py) and `firebreak up`
    served = next(d for d in deployments() if d.name == "respond").triggers[0]
    assert served.expect == trigger.expect and served.parameters == trigger.parameters


def test_concurrency_limits_cover_every_platform() -> None:
    limits = _load(DEPLOY / "concurrency-limits.yaml")["limits"]
    assert {name.removeprefix("platform-") for name in limits} == PLATFORMS
    assert all(isinstance(v, int) and v >= 1 for v in limits.values())
    assert "concurrency-limits.yaml" in (DEPLOY / "setup.sh").read_text()


# -- compose.yaml --------------------------------------------------------------------------------

# The subset of the Compose specification this file uses, strictly: a typo in a key we rely on
# fails here rather than on `docker compose up`.
_SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "image": {"type": "string", "pattern": r"^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?$"},
        "build": {"type": "object", "required": ["context"], "additionalProperties": False,
                  "properties": {"context": {"type": "string"}, "dockerfile": {"type": "string"}}},
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "environment": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "ports": {"type": "array", "items": {"type": "string", "pattern": r"^([\d.]+:)?\d+:\d+$"}},
        "volumes": {"type": "array", "items": {"type": "string"}},
        "depends_on": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["condition"],
            "properties": {"condition": {"enum": ["service_started", "service_healthy",
                                                  "service_completed_successfully"]}}}},
        "healthcheck": {"type": "object", "required": ["test"], "properties": {"test": {"type": "array"}}},
        "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
        "profiles": {"type": "array", "items": {"type": "string"}},
        "deploy": {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 1}}},
    },
    "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
}
COMPOSE_SCHEMA = {
    "type": "object",
    "required": ["services"],
    "patternProperties": {"^x-": {}},
    "properties": {"name": {"type": "string"}, "services": {"type": "object", "additionalProperties": _SERVICE},
                   "volumes": {"type": "object"}},
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(DEPLOY / "compose.yaml")


def test_compose_matches_the_schema(compose: dict[str, Any]) -> None:
    jsonschema.validate(compose, COMPOSE_SCHEMA)


def test_compose_has_the_whole_stack_and_its_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "prefect-server", "worker", "intake"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                if src != "./playbooks":  # made by the operator (docs/DEPLOY.md)
                    assert (DEPLOY / src).exists(), f"{name}: {src} missing"
            else:
                assert src in compose.get("volumes", {}), f"{name}: named volume {src} not declared"
        if "build" in svc:
            assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
    intake = services["intake"]
    assert intake["command"][:3] == ["python", "-m", "firebreak.web.intake"]
    assert "8787:8787" in intake["ports"]
    # Secrets only by reference: every ${VAR} must be required (":?"), never a default in the file.
    text = (DEPLOY / "compose.yaml").read_text()
    for ref in re.findall(r"\$\{([^}]*)\}", text):
        assert ":?" in ref, f"${{{ref}}} has no ':?' (a missing secret must stop compose)"
    assert "prefect:3.8.8" in services["prefect-server"]["image"]


# -- Kubernetes ----------------------------------------------------------------------------------

K8S = DEPLOY / "k8s"
_API = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1", "Deployment": "apps/v1",
        "Job": "batch/v1", "Kustomization": "kustomize.config.k8s.io/v1beta1"}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


def test_every_manifest_is_well_formed() -> None:
    docs = _docs()
    assert docs
    for fname, doc in docs:
        kind = doc.get("kind")
        assert kind in _API, f"{fname}: unknown kind {kind}"
        assert doc.get("apiVersion") == _API[kind], f"{fname}: {kind} needs apiVersion {_API[kind]}"
        if kind == "Kustomization":
            for res in doc["resources"]:
                assert (K8S / res).is_file(), f"kustomization lists missing {res}"
            continue
        meta = doc.get("metadata", {})
        assert _NAME.match(meta.get("name", "")), f"{fname}: bad metadata.name"
        if kind != "Namespace":
            assert meta.get("namespace") == "firebreak", f"{fname}: {kind} outside the namespace"
        if kind in ("Deployment", "Job", "Service"):
            assert isinstance(doc.get("spec"), dict), f"{fname}: {kind} without spec"


def _pod_specs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(doc["metadata"]["name"], doc, doc["spec"]["template"]["spec"]) for _, doc in _docs()
            if doc["kind"] in ("Deployment", "Job")]


def test_deployments_select_their_pods_and_containers_are_complete() -> None:
    for name, doc, pod in _pod_specs():
        if doc["kind"] == "Deployment":
            sel = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert sel.items() <= labels.items(), f"{name}: selector does not match the pod labels"
        for c in pod["containers"]:
            assert re.match(r"^[a-z0-9./_-]+:[A-Za-z0-9._-]+$", c["image"]), f"{name}: image needs a tag"
            assert c["image"].split(":")[1] != "latest", f"{name}: pin the image"
            assert c.get("command"), f"{name}: no command"
            for p in c.get("ports", []):
                assert 1 <= p["containerPort"] <= 65535
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in c:
                    port = c[probe]["httpGet"]["port"]
                    assert port in {p.get("name") for p in c.get("ports", [])} | {p["containerPort"] for p in
                                                                                   c.get("ports", [])}
    names = {n for n, _, _ in _pod_specs()}
    assert {"prefect-server", "firebreak-worker", "firebreak-intake"} <= names


def test_services_reach_a_named_container_port() -> None:
    pods = {tuple(sorted(doc["spec"]["template"]["metadata"]["labels"].items())): pod for _, doc, pod in _pod_specs()}
    for _, doc in _docs():
        if doc["kind"] != "Service":
            continue
        sel = doc["spec"]["selector"]
        targets = [pod for labels, pod in pods.items() if sel.items() <= dict(labels).items()]
        assert targets, f"service {doc['metadata']['name']} selects no pod"
        ports = {p.get("name") for c in targets[0]["containers"] for p in c.get("ports", [])}
        for sp in doc["spec"]["ports"]:
            assert sp["targetPort"] in ports


def test_secret_and_configmap_references_exist() -> None:
    docs = [d for _, d in _docs()]
    secret_keys = {(d["metadata"]["name"], k) for d in docs if d["kind"] == "Secret" for k in d["stringData"]}
    configmaps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"} | {"firebreak-playbooks"}
    for name, _, pod in _pod_specs():
        for c in pod["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert (ref["name"], ref["key"]) in secret_keys, f"{name}: unknown secret key {ref}"
            for src in c.get("envFrom", []):
                assert src["configMapRef"]["name"] in configmaps
        for vol in pod.get("volumes", []):
            if "configMap" in vol:
                assert vol["configMap"]["name"] in configmaps
    # the secret file is an example: no real value may be committed
    assert all(v == "CHANGE-ME" for d in docs if d["kind"] == "Secret" for v in d["stringData"].values())


def test_deploy_doc_walks_through_every_target() -> None:
    doc = (ROOT / "docs" / "DEPLOY.md").read_text()
    for needle in ("firebreak up", "docker compose", "kubectl apply", "work pool", "concurrency", "prefect deploy"):
        assert needle in doc, needle
