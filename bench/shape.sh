#!/usr/bin/env bash
# bench/shape.sh - what bounds a durable hold's rate: holdfast beside a probe
# of the same transport with the other threading shape (docs/BENCHMARKS.md,
# "What bounds a hold").
#
#   make && ./bench/shape.sh          # about 2 minutes
#
# build/bench/h2o_probe (bench/h2o_probe.c; built when scripts/deps.sh bench
# has installed libh2o-evloop) answers GET /healthz and POST /v1/holds on
# h2o's event loop; each hold's reply waits for a commit thread's pwrite and
# fdatasync, and the thread that learns of a commit wakes each event loop
# once for the whole batch. It does no other work: no JSON, no engine, no
# policy, no SQLite. holdfast answers the same two routes with
# libmicrohttpd, whose replies are suspended and resumed one by one.
#
# Rounds alternate probe and holdfast (this machine's speed drifts), each
# with wrk at 32 connections: holds on one hot sku (bench/holds.lua,
# defenses off as in `make bench`), then GET /healthz. Everything listens
# on 127.0.0.1 and runs for a bounded time.
#
# Environment: HF_SHAPE_ROUNDS=3, HF_SHAPE_SECONDS=8.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/holdfast
PROBE=$ROOT/build/bench/h2o_probe
ROUNDS=${HF_SHAPE_ROUNDS:-3}
SECS=${HF_SHAPE_SECONDS:-8}

for f in "$BIN" "$PROBE"; do
    [ -x "$f" ] || { echo "shape.sh: $f is missing: scripts/deps.sh bench, then make" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "shape.sh: wrk is not installed (scripts/deps.sh)" >&2; exit 2; }

WORK=$(mktemp -d "$ROOT/build/shape.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

POLICY_OFF=$(cat "$ROOT/bench/policy-off.json") # every defense switched off (docs/POLICIES.md)

# wrk_rate LUA URL ARGS...: "rps p50_us p99_us errors"
wrk_rate() {
    local lua=$1 url=$2 line
    shift 2
    line=$(wrk -t2 -c32 -d"${SECS}s" --timeout 10s -s "$lua" "$url" -- "$@" 2>&1 | grep '^HF_WRK')
    awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           print v["rps"], v["p50_us"], v["p99_us"], v["non2xx"] + v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["timeouts"] }' <<<"$line"
}

# measure NAME URL: one line of holds and healthz against what listens at URL
measure() {
    local h z
    h=$(wrk_rate "$ROOT/bench/holds.lua" "$2" 0 5000)
    z=$(wrk_rate "$ROOT/bench/healthz.lua" "$2")
    read -r hr hp50 hp99 herr <<<"$h"
    read -r zr _ _ zerr <<<"$z"
    awk -v n="$1" -v hr="$hr" -v hp50="$hp50" -v hp99="$hp99" -v herr="$herr" -v zr="$zr" -v zerr="$zerr" \
        'BEGIN { printf "%-9s holds %6d/s (p50 %.2f ms, p99 %.2f ms, errors %d)  healthz %6d/s (errors %d)  holds/healthz %.2f\n",
                 n, hr, hp50 / 1000, hp99 / 1000, herr, zr, zerr, (zr > 0 ? hr / zr : 0) }'
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 10000))
}

probe_round() {
    local port
    port=$(free_port)
    "$PROBE" --port "$port" --threads 2 --journal "$WORK/probe.journal" 2>"$WORK/probe.log" &
    PID=$!
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    measure probe "http://127.0.0.1:$port"
    kill "$PID"; wait "$PID" 2>/dev/null; PID=
}

holdfast_round() {
    local port=
    rm -rf "$WORK/data"
    cat >"$WORK/config.json" <<EOF
{"durability": "durable", "threads": 2, "connections_per_address_max": 0, "compact_records": 0,
 "policy": $POLICY_OFF}
EOF
    "$BIN" serve --listen 127.0.0.1:0 --data "$WORK/data" --config "$WORK/config.json" 2>"$WORK/server.log" &
    PID=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/.*msg=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/server.log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "shape.sh: holdfast did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
    curl -s -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"stock": 1099511627776}' \
        "http://127.0.0.1:$port/v1/skus/hot"
    measure holdfast "http://127.0.0.1:$port"
    kill -TERM "$PID"; wait "$PID" 2>/dev/null; PID=
}

echo "== shape: $(nproc) cores, $(uname -r), $ROUNDS rounds of $SECS s per run, wrk -c32"
for r in $(seq "$ROUNDS"); do
    echo "round $r"
    probe_round
    holdfast_round
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
