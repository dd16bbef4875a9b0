#!/usr/bin/env bash
# Starts the local GeoVisio on 127.0.0.1 (installing it first if needed) and writes, into its run directory,
# `url`, `admin.token` (the default account, an admin) and `second.token` (an ordinary account).
# Prints `export` lines for the real-server test. Idempotent: a running server is left alone.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

"$here/install.sh" "$@"
geovisio_env

pid_file="$RUN_DIR/gunicorn.pid"
if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    log "already running (pid $(cat "$pid_file")) at $GEOVISIO_URL"
else
    rm -f "$pid_file"
    log "starting gunicorn at $GEOVISIO_URL"
    # One worker: the in-process picture executor lives in it. Keep-alive 30 s: with gunicorn's default of
    # 2 s, a client polling every 2 s on a kept-alive connection races the server closing it.
    (cd "$GEOVISIO_DIR" && exec "$VENV/bin/gunicorn" --bind "$GEOVISIO_HOST:$GEOVISIO_PORT" --workers 1 \
        --threads 4 --timeout 120 --keep-alive 30 --no-control-socket --pid "$pid_file" \
        --access-logfile "$RUN_DIR/access.log" --error-logfile "$RUN_DIR/server.log" \
        'geovisio:create_api()') </dev/null >>"$RUN_DIR/server.log" 2>&1 &
    for _ in $(seq 1 120); do
        if curl -fs -o /dev/null "$GEOVISIO_URL/api"; then break; fi
        if ! kill -0 $! 2>/dev/null; then tail -30 "$RUN_DIR/server.log" >&2; exit 1; fi
        sleep 0.5
    done
    curl -fsS -o /dev/null "$GEOVISIO_URL/api" || { tail -30 "$RUN_DIR/server.log" >&2; exit 1; }
fi

if [ ! -s "$RUN_DIR/admin.token" ] || [ ! -s "$RUN_DIR/second.token" ]; then
    (cd "$GEOVISIO_DIR" && "$VENV/bin/python" "$here/tokens.py" "$RUN_DIR") >"$RUN_DIR/tokens.log" 2>&1 || {
        cat "$RUN_DIR/tokens.log" >&2; exit 1; }
fi
echo "$GEOVISIO_URL" > "$RUN_DIR/url"
log "ready at $GEOVISIO_URL"
echo "export MTP_PANORAMAX_REAL_URL=$GEOVISIO_URL"
echo "export MTP_PANORAMAX_REAL_TOKEN_FILE=$RUN_DIR/admin.token"
echo "export MTP_PANORAMAX_REAL_SECOND_TOKEN_FILE=$RUN_DIR/second.token"
