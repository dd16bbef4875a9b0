#!/usr/bin/env bash
# Installs a local GeoVisio (the Panoramax API server) for the real-server tests and the bench:
# PostgreSQL 15 + PostGIS from Debian, geovisio pinned from PyPI in its own venv, a database, and (with
# --with-cli) panoramax_cli in a second venv (its pins conflict with geovisio's). Idempotent: every step
# is skipped when already done, so running it again takes a second or two.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"

with_cli=false
for arg in "$@"; do
    case "$arg" in
        --with-cli) with_cli=true ;;
        *) echo "usage: $0 [--with-cli]" >&2; exit 2 ;;
    esac
done

mkdir -p "$GEOVISIO_DIR" "$RUN_DIR" "$GEOVISIO_DIR/pictures"

# 1. System packages (Debian 12). PostGIS 3.3 is older than upstream asks (3.4); geovisio 2.15.1 uses nothing newer.
need_pkgs=()
for p in postgresql-15 postgresql-15-postgis-3 python3-venv; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "apt-get install ${need_pkgs[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# What `pip show` says the installed version of package $2 in venv $1 is (empty when none). Captured
# first: `pip show | grep -q` under pipefail fails when grep exits before pip finishes writing.
installed_version() { "$1/bin/pip" show "$2" 2>/dev/null | sed -n 's/^Version: //p' || true; }

# 2. The server's venv. The Debian python is used on purpose (3.11, with venv support).
if [ ! -x "$VENV/bin/panoramax_backend" ] || [ "$(installed_version "$VENV" geovisio)" != "$GEOVISIO_VERSION" ]; then
    log "venv with geovisio==$GEOVISIO_VERSION"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "geovisio==$GEOVISIO_VERSION" gunicorn
fi

if $with_cli && [ "$(installed_version "$CLI_VENV" panoramax_cli 2>/dev/null)" != "$PANORAMAX_CLI_VERSION" ]; then
    log "venv with panoramax_cli==$PANORAMAX_CLI_VERSION"
    /usr/bin/python3 -m venv "$CLI_VENV"
    "$CLI_VENV/bin/pip" install -q --disable-pip-version-check "panoramax_cli==$PANORAMAX_CLI_VERSION"
fi

# 3. Signing key of the tokens: generated once, kept.
if [ ! -s "$GEOVISIO_DIR/secret_key" ]; then
    (umask 077; /usr/bin/python3 -c 'import secrets; print(secrets.token_hex(32))' > "$GEOVISIO_DIR/secret_key")
fi

# 4. PostgreSQL must run for the database steps; remember whether we started it (stop.sh stops only ours).
if ! pg_online; then
    log "starting PostgreSQL $PG_VERSION/$PG_CLUSTER"
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
    touch "$RUN_DIR/we-started-postgresql"
fi

port="$(pg_port)"
psql_pg() { as_postgres psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ -z "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname='$GEOVISIO_DB_USER'")" ]; then
    log "creating role $GEOVISIO_DB_USER"
    psql_pg -c "CREATE ROLE $GEOVISIO_DB_USER LOGIN PASSWORD '$GEOVISIO_DB_PASSWORD'"
fi
if [ -z "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname='$GEOVISIO_DB'")" ]; then
    log "creating database $GEOVISIO_DB"
    psql_pg -c "CREATE DATABASE $GEOVISIO_DB ENCODING 'UTF-8' TEMPLATE template0 OWNER $GEOVISIO_DB_USER"
    psql_pg -d "$GEOVISIO_DB" -c "CREATE EXTENSION IF NOT EXISTS postgis"
    # The server requires the database time zone to be UTC.
    psql_pg -c "ALTER DATABASE $GEOVISIO_DB SET TIMEZONE TO 'UTC'"
    # Its migrations switch session_replication_role.
    psql_pg -c "GRANT SET ON PARAMETER session_replication_role TO $GEOVISIO_DB_USER"
fi

# 5. Schema migrations (quick when up to date).
geovisio_env
log "db upgrade"
(cd "$GEOVISIO_DIR" && "$VENV/bin/panoramax_backend" db upgrade >"$RUN_DIR/db-upgrade.log" 2>&1) || {
    cat "$RUN_DIR/db-upgrade.log" >&2; exit 1; }
log "installed in $GEOVISIO_DIR"
