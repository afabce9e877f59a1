#!/usr/bin/env bash
# `make test`: install what the tests need, then run the whole suite against a real redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
