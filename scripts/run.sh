#!/usr/bin/env bash
# `make run`: API, $WORKERS workers and the scheduler in the foreground (plus a local Redis if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements.txt

export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export PORT="${PORT:-8000}" WORKERS="${WORKERS:-2}"
export PATH="$PWD/.venv/bin:$PATH"

redis_pid=""
hostport=$(python -c "from urllib.parse import urlsplit as u; p=u('$REDIS_URL'); print(p.hostname or '', p.port or 6379)")
read -r host port <<<"$hostport"
if [[ "$host" == "127.0.0.1" || "$host" == "localhost" ]] && ! redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then
  mkdir -p data/redis
  echo "run: starting redis-server on $host:$port (data and AOF in ./data/redis)" >&2
  # Its own session: Ctrl-C reaches the workers first, and Redis outlives them (stopped on exit below).
  setsid redis-server --bind "$host" --port "$port" --dir "$PWD/data/redis" --appendonly yes --appendfsync everysec \
    --save "" --loglevel warning &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
trap 'exit 130' INT
trap 'exit 143' TERM
trap '[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; wait' EXIT

# Platforms restart a dead worker or scheduler; locally a loop does (honcho itself would stop everything).
mkdir -p data
sed -E 's/^(worker|scheduler): (.*)$/\1: while true; do \2; echo "\1 exited ($?), restarting in 1 s" >\&2; sleep 1; done/' \
  Procfile > data/Procfile.local
honcho start -f data/Procfile.local -d . -c "worker=$WORKERS"
