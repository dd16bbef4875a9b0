#!/usr/bin/env bash
# Bench: `mtp upload` vs `panoramax_cli upload` (1.4.1, its own venv) against the local GeoVisio, on the
# same kind of pictures (fresh ones per run: the server refuses the same bytes twice), fresh upload sets.
# Prints one markdown row per client and setting: wall time until every file is accepted (the command's
# own run; both exit once the last file is answered and the set completed), time until the server says
# the set is ready (polled every 100 ms from the start of the upload), client CPU (user+sys) and peak RSS
# (from GNU time). Talks only to 127.0.0.1 (panoramax_cli's PyPI version check is pointed at a closed
# local port).
#
#   cargo build --release -p mtp-host -p mtp-panoramax && scripts/geovisio/bench.sh [COUNT] [BYTES]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
. "$here/common.sh"
count="${1:-50}"
bytes="${2:-80000}"
target="${CARGO_TARGET_DIR:-$repo/target}"
mtp="$(realpath "${MTP_BIN:-$target/release/mtp}")"
plugin="$(realpath "${MTP_PANORAMAX_LIB:-$target/release/libmtp_panoramax.so}")"
cli="$CLI_VENV/bin/panoramax_cli"
[ -x "$mtp" ] && [ -f "$plugin" ] || { echo "build first: cargo build --release -p mtp-host -p mtp-panoramax" >&2; exit 2; }

eval "$("$here/start.sh" --with-cli)"
token="$(cat "$MTP_PANORAMAX_REAL_TOKEN_FILE")"
url="$MTP_PANORAMAX_REAL_URL"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins" && cp "$plugin" "$work/plugins/"

seed=$(( $(date +%s) % 100000 + 1000 ))
fresh() { # a fresh sequence directory of $count pictures of about $bytes each, from seed $1
    local seed="$1"
    local dir="$work/seq-$seed"
    MTP_STATE_DIR="$work/gen-state" "$mtp" sequence generate "$dir" --count "$count" \
        --bytes-per-image "$bytes" --width 320 --height 160 --seed "$seed" --name "bench $seed" >/dev/null
    echo "$dir"
}

ready_after() { # seconds from $1 (epoch ns) until upload set $2 is ready
    local start="$1" id="$2"
    for _ in $(seq 1 1200); do
        if curl -fs -H "Authorization: Bearer $token" "$url/api/upload_sets/$id" | grep -q '"ready":true'; then
            echo "scale=1; ($(date +%s%N) - $start) / 1000000000" | bc; return
        fi
        sleep 0.1
    done
    echo "n/a"
}

server_ticks() { # CPU clock ticks used so far by gunicorn's master and worker (utime + stime)
    local master; master="$(cat "$RUN_DIR/gunicorn.pid")"
    local total=0 pid
    for pid in "$master" $(pgrep -P "$master"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
hz="$(getconf CLK_TCK)"

row() { # client setting wall cpu rss ready server-ticks
    printf '| %s | %s | %s s | %s s | %s s | %s MB | %s s |\n' "$1" "$2" "$3" "$6" "$4" "$5" \
        "$(echo "scale=1; $7 / $hz" | bc)"
}

measure() { # label setting command...: runs it under GNU time
    local label="$1" setting="$2"; shift 2
    local start; start=$(date +%s%N)
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
    read -r wall user sys rss_kb <"$work/time"
    echo "$start $wall $(echo "$user + $sys" | bc) $((rss_kb / 1024))"
}

echo "| client | setting | wall to all accepted | time to ready | client CPU | peak RSS | server CPU to ready |"
echo "|---|---|---|---|---|---|---|"

for jobs in 1 4; do
    seed=$((seed + 1)); dir="$(fresh "$seed")"
    home="$work/mtp-home-$jobs"; mkdir -p "$home"
    echo "PANORAMAX_URL=$url" >"$home/.env"
    (cd "$home" && MTP_STATE_DIR="$home/state" "$mtp" --plugins-dir "$work/plugins" auth panoramax --token "$token" >/dev/null)
    ticks=$(server_ticks)
    read -r start wall cpu rss < <(cd "$home" && measure mtp "--jobs $jobs" env MTP_STATE_DIR="$home/state" "$mtp" --plugins-dir "$work/plugins" upload "$dir" --jobs "$jobs")
    id="$(cd "$home" && MTP_STATE_DIR="$home/state" "$mtp" --plugins-dir "$work/plugins" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["keys"]["upload_set_id"])')"
    ready="$(ready_after "$start" "$id")"
    row "mtp upload" "--jobs $jobs" "$wall" "$cpu" "$rss" "$ready" "$(($(server_ticks) - ticks))"
done

for parallel in 1 4; do
    seed=$((seed + 1)); dir="$(fresh "$seed")"
    ticks=$(server_ticks)
    read -r start wall cpu rss < <(measure panoramax_cli "--parallel-uploads $parallel" \
        env HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1 \
        "$cli" upload --api-url "$url" --token "$token" --no-wait --parallel-uploads "$parallel" "$dir")
    id="$(grep -oE '[0-9a-f-]{36}' "$dir/_panoramax.txt" | head -1)"
    ready="$(ready_after "$start" "$id")"
    row "panoramax_cli 1.4.1" "--parallel-uploads $parallel$([ "$parallel" = 1 ] && echo ' (default)')" "$wall" "$cpu" "$rss" "$ready" "$(($(server_ticks) - ticks))"
done
