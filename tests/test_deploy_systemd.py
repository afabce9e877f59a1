"""The systemd units for a single server pass `systemd-analyze verify` and `security`, and agree with the
Procfile, the settings and the worker's shutdown grace.

No systemd runs as PID 1 here, so the units are never started: `verify` loads each one as the manager
would (it fails on a missing ExecStart binary, and reports unknown keys). Their /opt/pdfq and
/etc/pdfq paths are pointed, in a copy, at this checkout, its venv and its env file, which exist.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import Settings
from tests.test_deploy_config import DEFAULT_JOB_TIMEOUT_S, PROCESSES, ROOT

SYSTEMD = ROOT / "deploy" / "systemd"
UNITS = {"pdfq-web.service": "web", "pdfq-worker@.service": "worker", "pdfq-scheduler.service": "scheduler"}
INSTALL_ROOT = "/opt/pdfq"
ENV_FILE = "/etc/pdfq/pdfq.env"
MAX_EXPOSURE = 20
"""`systemd-analyze security` threshold, on its 0-100 scale (2.0 on the 0-10 display, "OK")."""
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
             "PrivateDevices": "yes", "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "", "User": "pdfq"}


def directives(unit: str) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, keys repeated in order (systemd allows repeats)."""
    found: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def env_file() -> dict[str, str]:
    lines = (SYSTEMD / "pdfq.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the units whose install paths point at this checkout, its venv and env file."""
    target = tmp_path_factory.mktemp("units")
    venv_bin = str(Path(sys.executable).parent)
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text()
        text = text.replace(f"{INSTALL_ROOT}/.venv/bin", venv_bin).replace(ENV_FILE, str(SYSTEMD / "pdfq.env"))
        (target / unit).write_text(text.replace(f"WorkingDirectory={INSTALL_ROOT}", f"WorkingDirectory={ROOT}"))
    return target


def analyze() -> str:
    binary = shutil.which("systemd-analyze")
    assert binary, "systemd-analyze comes with Debian's systemd package (scripts/bootstrap.sh)"
    return binary


def instance(unit: str) -> str:
    return unit.replace("@.", "@1.")


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_passes_systemd_analyze_verify(installed: Path, unit: str) -> None:
    """systemd-analyze verify loads the unit (a templated one as instance @1) without error or warning."""
    result = subprocess.run([analyze(), "verify", "--man=no", "--generators=no", instance(unit)],
                            cwd=installed, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_verify_catches_a_misspelt_key_and_a_missing_binary(installed: Path, tmp_path: Path) -> None:
    """The verify check is not vacuous: an unknown key is reported and a missing ExecStart binary fails."""
    text = (installed / "pdfq-scheduler.service").read_text()
    (tmp_path / "typo.service").write_text(text.replace("KillSignal=", "KillSignall="))
    (tmp_path / "gone.service").write_text(re.sub(r"ExecStart=\S+", "ExecStart=/nonexistent/python", text))
    typo = subprocess.run([analyze(), "verify", "--man=no", "typo.service"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert "Unknown key 'KillSignall'" in typo.stderr
    gone = subprocess.run([analyze(), "verify", "--man=no", "gone.service"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert gone.returncode != 0 and "/nonexistent/python" in gone.stderr


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_is_hardened(installed: Path, unit: str) -> None:
    """Each unit runs as the pdfq user with a read-only system, private /tmp, no new privileges and no
    capabilities, and systemd-analyze security rates its exposure OK (at most 2.0)."""
    found = directives(unit)
    for key, value in HARDENING.items():
        assert found.get(key) == [value], key
    result = subprocess.run([analyze(), "security", "--offline=true", "--no-pager", f"--threshold={MAX_EXPOSURE}",
                             instance(unit)], cwd=installed, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr
    assert re.search(r"Overall exposure level for \S+: \d\.\d OK", result.stdout)


@pytest.mark.parametrize("unit,process", sorted(UNITS.items()))
def test_units_run_the_procfile_commands_restarting(unit: str, process: str) -> None:
    """ExecStart is the Procfile's command from the install venv (the web one bound to loopback for the
    reverse proxy), restarted when it exits, with the env file and working directory of the install."""
    found = directives(unit)
    (command,) = found["ExecStart"]
    binary, _, args = command.partition(" ")
    assert binary == f"{INSTALL_ROOT}/.venv/bin/{PROCESSES[process].split()[0]}"
    expected = PROCESSES[process].split(" ", 1)[1]
    assert args == (expected + " --bind 127.0.0.1:8000" if process == "web" else expected)
    assert found["Restart"] == ["always"] and found["KillSignal"] == ["SIGTERM"]
    assert found["EnvironmentFile"] == [ENV_FILE] and found["WorkingDirectory"] == [INSTALL_ROOT]
    assert found["WantedBy"] == ["multi-user.target"]


def test_worker_stop_waits_past_the_grace_and_spares_the_render() -> None:
    """Stopping a worker sends SIGTERM to the worker alone (KillMode=mixed) and SIGKILLs only after
    WORKER_SHUTDOWN_GRACE_S, which covers a job at the default timeout."""
    found = directives("pdfq-worker@.service")
    grace = Settings.from_env({**env_file(), "APP_ENV": "development"}).worker_shutdown_grace_s
    assert DEFAULT_JOB_TIMEOUT_S <= grace < int(found["TimeoutStopSec"][0])
    assert found["KillMode"] == ["mixed"]
    assert "%i" in found["Description"][0]


def settings_names() -> set[str]:
    """Every environment variable shared/config.py reads."""
    source = (ROOT / "shared" / "config.py").read_text()
    return set(re.findall(r'env(?:\.get\(|, )"([A-Z_]+)"', source))


def test_env_file_names_only_settings_the_service_reads_and_holds_no_secret() -> None:
    """pdfq.env names only variables of shared/config.py, leaves every secret empty, and once they are filled
    passes the production check with PDFs in the units' state directory."""
    env = env_file()
    assert set(env) - {"LOG_LEVEL"} <= settings_names()
    for secret in ("API_KEYS", "SECRET_KEY", "WEBHOOK_SECRET", "DASHBOARD_PASSWORD"):
        assert env[secret] == "", secret
    assert env["STORAGE_URL"] == "file:///var/lib/pdfq/pdfs"
    assert all("StateDirectory" in directives(u) for u in ("pdfq-web.service", "pdfq-worker@.service"))
    filled = {**env, "API_KEYS": "acme:placeholder", "SECRET_KEY": "s" * 32, "WEBHOOK_SECRET": "w" * 32}
    settings = Settings.from_env(filled)
    assert settings.production
    settings.for_api()


def test_sysusers_file_creates_the_unit_user() -> None:
    """The sysusers.d line creates the system user the units name."""
    (line,) = [x for x in (SYSTEMD / "pdfq.sysusers.conf").read_text().splitlines() if x and not x.startswith("#")]
    assert line.split()[:2] == ["u", "pdfq"]
