#!/usr/bin/env bash
# Stops the local GeoVisio by its PID file, and PostgreSQL only when install.sh/start.sh started it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

pid_file="$RUN_DIR/gunicorn.pid"
if [ -s "$pid_file" ]; then
    pid="$(cat "$pid_file")"
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping gunicorn (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pid_file"
fi
if [ -e "$RUN_DIR/we-started-postgresql" ]; then
    log "stopping PostgreSQL $PG_VERSION/$PG_CLUSTER (we started it)"
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop || true
    rm -f "$RUN_DIR/we-started-postgresql"
fi
