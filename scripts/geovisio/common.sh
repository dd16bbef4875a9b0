# Shared settings of the GeoVisio (Panoramax API server) scripts; sourced, not run.
# Everything lives in one state directory so a second start is fast and `stop.sh` finds its PID files.
GEOVISIO_VERSION="2.15.1"
PANORAMAX_CLI_VERSION="1.4.1"
GEOVISIO_DIR="${MTP_GEOVISIO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mtp-geovisio}"
GEOVISIO_PORT="${MTP_GEOVISIO_PORT:-5178}"
GEOVISIO_HOST="127.0.0.1"
GEOVISIO_URL="http://${GEOVISIO_HOST}:${GEOVISIO_PORT}"
GEOVISIO_DB="${MTP_GEOVISIO_DB:-mtp_geovisio}"
GEOVISIO_DB_USER="mtp_geovisio"
GEOVISIO_DB_PASSWORD="mtp_geovisio"
PG_VERSION="15"
PG_CLUSTER="main"
VENV="$GEOVISIO_DIR/venv"
CLI_VENV="$GEOVISIO_DIR/cli-venv"
RUN_DIR="$GEOVISIO_DIR/run"

log() { echo "[geovisio] $*" >&2; }

pg_port() {
    pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $3}'
}

pg_online() {
    pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $4}' | grep -q online
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

# The server's settings (see docs/providers/panoramax.md "Running a real server").
geovisio_env() {
    export DB_URL="postgresql://${GEOVISIO_DB_USER}:${GEOVISIO_DB_PASSWORD}@127.0.0.1:$(pg_port)/${GEOVISIO_DB}"
    export FS_URL="$GEOVISIO_DIR/pictures"
    # Tokens are HS256 JWTs signed with this key: it is generated once and kept across restarts.
    FLASK_SECRET_KEY="$(cat "$GEOVISIO_DIR/secret_key")"
    export FLASK_SECRET_KEY
    export PICTURE_PROCESS_THREADS_LIMIT=1
    export API_FORCE_AUTH_ON_UPLOAD=true
    unset API_ACCEPT_DUPLICATE
}
