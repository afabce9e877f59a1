"""The Kubernetes manifests render, validate against the API schemas and KEDA's CRD, pass the policy scan
and agree with the settings, processes and health routes the app really has.

Offline: kustomize is the one built into kubectl (`kubectl kustomize`, no cluster contacted), the
Kubernetes schemas are those bundled in kubernetes-validate, KEDA's ScaledObject schema is vendored
from its v2.20.2 CRD, and checkov runs from the tools venv (.venv-tools, made by scripts/bootstrap.sh)
in a network namespace of its own, so it cannot phone home.
"""
from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.config import Settings
from tests.test_deploy_config import DEFAULT_JOB_TIMEOUT_S, PROCESSES, ROOT

KUBE = ROOT / "deploy" / "kubernetes"
TARGETS = ("base", "overlays/kind", "overlays/production", "overlays/production-hpa")
OVERLAYS = ("kind", "production", "production-hpa")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""The oldest release still common on managed clusters and the newest kubernetes-validate knows."""
KEDA_SCHEMA = KUBE / "schemas" / "keda-scaledobject-v2.20.2.schema.json"
PARENT_WORKER_MIB = 256
"""Room a worker container keeps above the render cap for the parent worker process, in MiB."""
PORT = 8000
"""gunicorn's port (api/gunicorn_conf.py binds $PORT, default 8000)."""


@functools.cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) comes with the machine image; see scripts/bootstrap.sh"
    result = subprocess.run([kubectl, "kustomize", str(KUBE / target)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


def strict(schema: Any) -> Any:
    """Refuse unknown fields wherever the schema lists fields, as the API server's pruning would drop them."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@functools.cache
def keda_validator() -> jsonschema.protocols.Validator:
    schema = strict(json.loads(KEDA_SCHEMA.read_text()))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def keda_errors(document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in keda_validator().iter_errors(document)]


# --- rendering and schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_manifest_validates_against_the_kubernetes_schemas(target: str, version: str) -> None:
    """Each rendered object (base and every overlay) passes kubernetes-validate in strict mode for that release."""
    checked = 0
    for document in render(target):
        if document["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: checked against KEDA's own schema below
        kubernetes_validate.validate(document, version, strict=True)
        checked += 1
    assert checked >= 8


def test_scaled_object_validates_against_kedas_crd_schema() -> None:
    """The production ScaledObject matches the openAPI schema of KEDA v2.20.2's CRD, unknown fields refused."""
    scaled = find(render("overlays/production"), "ScaledObject", "pdfq-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert keda_errors(scaled) == []


def test_keda_schema_check_catches_a_misspelt_field() -> None:
    """The KEDA check is not vacuous: a misspelt field or a missing required one is reported."""
    scaled = copy.deepcopy(find(render("overlays/production"), "ScaledObject", "pdfq-worker"))
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    del scaled["spec"]["triggers"][0]["type"]
    errors = keda_errors(scaled)
    assert any("maxReplicas" in e for e in errors) and any("'type' is a required property" in e for e in errors)


def test_kubernetes_validate_rejects_a_misspelt_field() -> None:
    """Strict kubernetes-validate is not vacuous either: a typo in a probe is an error."""
    worker = copy.deepcopy(find(render("base"), "Deployment", "pdfq-api"))
    container(worker)["readinessProbe"]["httpGett"] = container(worker)["readinessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSIONS[-1], strict=True)


# --- the processes and their settings -----------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_deployments_run_the_procfile_processes(target: str) -> None:
    """api, worker and scheduler run exactly the Procfile's commands from one image."""
    docs = render(target)
    commands = {name: " ".join(container(find(docs, "Deployment", f"pdfq-{name}"))["command"])
                for name in ("api", "worker", "scheduler")}
    assert commands == {"api": PROCESSES["web"], "worker": PROCESSES["worker"], "scheduler": PROCESSES["scheduler"]}
    images = {container(find(docs, "Deployment", f"pdfq-{n}"))["image"] for n in ("api", "worker", "scheduler")}
    assert len(images) == 1 and not images.pop().endswith(":latest")


def test_api_probes_hit_the_health_routes_on_gunicorns_port() -> None:
    """The API is live on /healthz and ready on /readyz, on port 8000, which the Service targets."""
    docs = render("base")
    api = container(find(docs, "Deployment", "pdfq-api"))
    port = next(p for p in api["ports"] if p["name"] == "http")
    assert port["containerPort"] == PORT and {"name": "PORT", "value": str(PORT)} in api["env"]
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = find(docs, "Service", "pdfq-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"].items() <= find(docs, "Deployment", "pdfq-api")["spec"]["template"][
        "metadata"]["labels"].items()


def test_routes_the_probes_use_answer_as_the_probes_expect(client) -> None:
    """/healthz answers 200 and /readyz says what it checked (the app behind the probe paths above)."""
    assert client.get("/healthz").status_code == 200
    assert set(client.get("/readyz").json["checks"]) == {"redis", "workers"}


def test_worker_stop_and_memory_fit_its_settings() -> None:
    """SIGKILL comes after WORKER_SHUTDOWN_GRACE_S (which covers a default-timeout job), and the container's
    memory limit leaves room above WORKER_MEMORY_LIMIT_MB so a runaway render fails `memory_limit`, not OOM."""
    worker = find(render("base"), "Deployment", "pdfq-worker")
    spec = container(worker)
    env = {e["name"]: e["value"] for e in spec["env"]}
    settings = Settings.from_env(env)
    assert DEFAULT_JOB_TIMEOUT_S <= settings.worker_shutdown_grace_s
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > settings.worker_shutdown_grace_s
    limit = mebibytes(spec["resources"]["limits"]["memory"])
    assert limit - settings.worker_memory_limit_mb >= PARENT_WORKER_MIB
    assert spec["resources"]["requests"] == spec["resources"]["limits"], "one render keeps one core busy"


def test_scheduler_is_one_replica_replaced_not_rolled() -> None:
    """Exactly one scheduler, and a rollout stops the old one before starting the new (Recreate)."""
    for target in TARGETS:
        scheduler = find(render(target), "Deployment", "pdfq-scheduler")
        assert scheduler["spec"]["replicas"] == 1 and scheduler["spec"]["strategy"] == {"type": "Recreate"}
        assert not [d for d in render(target) if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
                    and d["spec"]["scaleTargetRef"]["name"] == "pdfq-scheduler"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_is_non_root_with_a_read_only_root_and_a_temp_volume(target: str) -> None:
    """Every container runs non-root, without privilege escalation or capabilities, on a read-only root
    filesystem with an emptyDir on /tmp (or Redis's data volume), with requests and limits set."""
    for deployment in (d for d in render(target) if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
        assert pod["automountServiceAccountToken"] is False
        spec = container(deployment)
        assert spec["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                           "capabilities": {"drop": ["ALL"]}}
        assert {"requests", "limits"} <= set(spec["resources"])
        mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        if deployment["metadata"]["name"] == "pdfq-redis":
            assert "persistentVolumeClaim" in volumes[mounts["/data"]]
        else:
            assert "emptyDir" in volumes[mounts["/tmp"]]
            assert "XDG_CACHE_HOME" in find(render(target), "ConfigMap", config_name(render(target)))["data"]


def config_name(docs: tuple[dict[str, Any], ...]) -> str:
    return next(d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"].startswith("pdfq-config"))


def test_disruption_budgets_cover_api_and_workers() -> None:
    """A drain keeps an API pod and takes workers one at a time; each budget selects real pods."""
    docs = render("base")
    for name, rule in (("pdfq-api", {"minAvailable": 1}), ("pdfq-worker", {"maxUnavailable": 1})):
        budget = find(docs, "PodDisruptionBudget", name)
        assert rule.items() <= budget["spec"].items()
        labels = find(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_configuration_passes_the_production_check(overlay: str) -> None:
    """Config map plus the documented Secret keys make settings the app accepts in production, with the
    overlay's Redis and storage."""
    docs = render(f"overlays/{overlay}")
    config = find(docs, "ConfigMap", config_name(docs))["data"]
    secret = {"SECRET_KEY": "s" * 32, "WEBHOOK_SECRET": "w" * 32, "API_KEYS": "acme:placeholder-key"}
    if overlay == "kind":
        assert config["REDIS_URL"] == "redis://pdfq-redis:6379/0" and config["STORAGE_URL"] == "redis"
        find(docs, "Service", "pdfq-redis")
    else:
        assert "REDIS_URL" not in config, "the external Redis URL carries a password: it is in the Secret"
        assert config["STORAGE_URL"].startswith("s3://")
        secret["REDIS_URL"] = "rediss://default:placeholder@redis.example.com:6380/0"
    settings = Settings.from_env({**config, **secret})
    assert settings.production
    settings.for_api()
    for name in ("api", "worker", "scheduler"):
        sources = container(find(docs, "Deployment", f"pdfq-{name}"))["envFrom"]
        assert sources == [{"configMapRef": {"name": config_name(docs)}}, {"secretRef": {"name": "pdfq-secrets"}}]


@pytest.mark.parametrize("target", TARGETS)
def test_manifests_hold_no_secret(target: str) -> None:
    """No Secret object and no secret value is in the manifests: they only reference Secret pdfq-secrets."""
    docs = render(target)
    assert not [d for d in docs if d["kind"] == "Secret"]
    text = yaml.safe_dump_all(docs).lower()
    assert "dev-key" not in text and not re.search(r"(secret_key|webhook_secret|api_keys|password)\s*[:=]", text)


# --- autoscaling ---------------------------------------------------------------------------------


def scaling_targets(docs: tuple[dict[str, Any], ...]) -> dict[str, float]:
    if any(d["kind"] == "ScaledObject" for d in docs):
        scaled = find(docs, "ScaledObject", "pdfq-worker")
        targets = {}
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["type"] == "prometheus" and trigger["metricType"] == "Value"
            queue = re.fullmatch(r'max\(pdf_queue_oldest_age_seconds\{queue="(\w+)"\}\)',
                                 trigger["metadata"]["query"]).group(1)  # type: ignore[union-attr]
            targets[queue] = float(trigger["metadata"]["threshold"])
        return targets
    hpa = find(docs, "HorizontalPodAutoscaler", "pdfq-worker")
    return {m["external"]["metric"]["selector"]["matchLabels"]["queue"]: float(m["external"]["target"]["value"])
            for m in hpa["spec"]["metrics"] if m["external"]["metric"]["name"] == "pdf_queue_oldest_age_seconds"}


def test_keda_and_hpa_scale_workers_on_the_same_queue_age_targets() -> None:
    """KEDA and the plain-HPA fallback target the worker Deployment with the same per-queue age targets,
    bounds (2 to 10) and scale-up/scale-down behaviour."""
    keda_docs, hpa_docs = render("overlays/production"), render("overlays/production-hpa")
    targets = scaling_targets(keda_docs)
    assert targets == scaling_targets(hpa_docs)
    assert list(targets) == ["urgent", "high", "normal", "low"]
    assert list(targets.values()) == sorted(targets.values()), "more urgent work tolerates less waiting"
    scaled = find(keda_docs, "ScaledObject", "pdfq-worker")["spec"]
    hpa = find(hpa_docs, "HorizontalPodAutoscaler", "pdfq-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == hpa["scaleTargetRef"]["name"] == "pdfq-worker"
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    assert not [d for d in keda_docs if d["kind"] == "HorizontalPodAutoscaler"], "KEDA makes its own HPA"
    assert not [d for d in hpa_docs if d["kind"] == "ScaledObject"]


def test_keda_never_scales_workers_to_zero_and_falls_back_when_prometheus_is_gone() -> None:
    """At least one worker stays (the API's /readyz needs one), and a lost metric holds at least 4 workers."""
    scaled = find(render("overlays/production"), "ScaledObject", "pdfq-worker")["spec"]
    assert scaled["minReplicaCount"] >= 1 and "idleReplicaCount" not in scaled
    assert scaled["fallback"]["replicas"] > scaled["minReplicaCount"]
    assert all(t["metadata"]["ignoreNullValues"] == "false" for t in scaled["triggers"]), \
        "a missing series is a failure (fallback), not an empty queue"


def test_prometheus_adapter_rule_serves_the_hpa_metric() -> None:
    """The prometheus-adapter values expose, under the HPA's metric name, the series /metrics exports."""
    values = yaml.safe_load((KUBE / "components" / "hpa" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = values["rules"]["external"]
    hpa = find(render("overlays/production-hpa"), "HorizontalPodAutoscaler", "pdfq-worker")
    names = {m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"]}
    assert names == {rule["name"]["as"]} and rule["seriesQuery"].startswith(rule["name"]["as"] + "{")
    assert rule["metricsQuery"].startswith("max("), "every API pod reports the same fleet-wide figure"


# --- policy scan ---------------------------------------------------------------------------------


def checkov_findings(tmp_path: Path) -> set[tuple[str, str, str]]:
    checkov = ROOT / ".venv-tools" / "bin" / "checkov"
    assert checkov.exists(), "checkov is installed in .venv-tools by scripts/bootstrap.sh requirements-dev.txt"
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(render(f"overlays/{overlay}")))
    command = [str(checkov), "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json", "--quiet",
               "--compact", "--skip-download"]
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) keeps checkov off the network"
    result = subprocess.run([unshare, "--net", *command], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE", "HOME": str(tmp_path)})
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    findings = set()
    for report in reports if isinstance(reports, list) else [reports]:
        assert report["summary"]["parsing_errors"] == 0 and report["summary"]["resource_count"] > 30
        for failed in report["results"]["failed_checks"]:
            resource = failed["resource"].split(".")
            findings.add((failed["check_id"], Path(failed["file_path"]).stem, resource[2]))
    return findings


def test_policy_scan_finds_nothing_beyond_the_accepted_findings(tmp_path: Path) -> None:
    """checkov's Kubernetes policies pass on every overlay except the findings accepted, with their reasons,
    in deploy/kubernetes/accepted-findings.yaml; each accepted finding still occurs (the list is current)."""
    accepted = yaml.safe_load((KUBE / "accepted-findings.yaml").read_text())
    assert all(entry["reason"].strip() for entry in accepted)
    findings = checkov_findings(tmp_path)
    allowed = {(e["check"], overlay, resource) for e in accepted for overlay in e["overlays"]
               for resource in e["resources"]}
    assert findings - allowed == set(), "new findings: fix them or accept them with a reason"
    unused = [e["check"] for e in accepted if not any(f[0] == e["check"] for f in findings)]
    assert unused == [], "accepted findings that no longer occur"
