#!/usr/bin/env bash
# `make bench`: measure the service against raw WeasyPrint on this machine; add --quick for a short run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements-dev.txt
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; $SUDO apt-get update -qq; $SUDO apt-get install -y -qq wrk >/dev/null; }
.venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
exec .venv/bin/python -m bench "$@"
