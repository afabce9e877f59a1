#!/usr/bin/env bash
# `make test`: install what the tests need, then run the whole suite against a real redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements-dev.txt
# Three test processes (each with its own redis-server, workers and gunicorn): the suite waits on real
# heartbeats, lost-job detection and browsers far more than it computes. Tests that time real recovery
# (a killed worker's job re-run within its bound, lost-job detection) can miss their bound while the other
# processes load both cores; a failed test is run again, at most twice, before it counts as failed.
exec .venv/bin/python -m pytest -n "${TEST_PROCESSES:-3}" --dist loadfile --reruns 2 --reruns-delay 1 "$@"
