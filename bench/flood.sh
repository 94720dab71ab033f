#!/usr/bin/env bash
# bench/flood.sh - what a connection flood costs a shopper (docs/BENCHMARKS.md,
# "Connection flood"). It builds nothing: run `make` first.
#
# One server (durable, defenses off, connections_max 12000, the default
# deadlines and per-address cap) on an ephemeral 127.0.0.1 port with a fresh
# data directory under build/. Two phases of HF_FLOOD_SECONDS each, the same
# shoppers in both:
#   - hf_load holds at HF_FLOOD_RATE holds/s on 4 kept-alive connections
#     (a shop backend), latency from the intended send time;
#   - hf_flood's probe: HF_FLOOD_PROBES holds/s, each on a fresh connection
#     (a new visitor), latency from the intended start;
# first alone (baseline), then under a flood of HF_FLOOD_IDLE connections
# that send nothing and HF_FLOOD_SLOW that send a header byte every 10 s,
# from HF_FLOOD_SOURCES loopback addresses (so each stays under the
# per-address cap, as a flood from many machines would), reopened whenever
# the server closes or refuses them; then, if HF_FLOOD_KEPT is set, under
# that many connections that each send one whole request and keep the
# connection open and idle.
#
# Environment (defaults):
#   HF_FLOOD_SECONDS=30 HF_FLOOD_IDLE=5000 HF_FLOOD_SLOW=4000 HF_FLOOD_KEPT=0
#   HF_FLOOD_SOURCES=200 HF_FLOOD_RATE=1000 HF_FLOOD_PROBES=20
#   HF_FLOOD_BIN=build/holdfast  HF_FLOOD_TOOLS=build/bench
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${HF_FLOOD_BIN:-$ROOT/build/holdfast}
TOOLS=${HF_FLOOD_TOOLS:-$ROOT/build/bench}
SECS=${HF_FLOOD_SECONDS:-30}
IDLE=${HF_FLOOD_IDLE:-5000}
SLOW=${HF_FLOOD_SLOW:-4000}
KEPT=${HF_FLOOD_KEPT:-0}
SOURCES=${HF_FLOOD_SOURCES:-200}
RATE=${HF_FLOOD_RATE:-1000}
PROBES=${HF_FLOOD_PROBES:-20}

for f in "$BIN" "$TOOLS/hf_load" "$TOOLS/hf_flood"; do
    [ -x "$f" ] || { echo "flood.sh: $f is missing; run make first" >&2; exit 2; }
done
# The flood needs a descriptor per connection, here and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
FDS=$((IDLE + SLOW > KEPT ? IDLE + SLOW + 1000 : KEPT + 1000))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$FDS" ]; then
    echo "flood.sh: $FDS file descriptors needed, ulimit -Hn is $(ulimit -Hn)" >&2
    exit 2
fi

mkdir -p "$ROOT/build"
WORK=$(mktemp -d "$ROOT/build/flood-run.XXXXXX")
SERVER_PID=
FLOOD_PID=
cleanup() {
    [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

POLICY_OFF='{"quantity": {"enabled": 0}, "identity": {"enabled": 0}, "budget": {"enabled": 0},
 "hold_share": {"held_pct_max": 100}, "ttl": {"adaptive": 0, "pay_floor": 0, "max_ms": 86400000,
 "life_max_ms": 86400000}, "newcomer": {"enabled": 0}, "reputation": {"enabled": 0},
 "challenge": {"enabled": 0}, "waitlist": {"enabled": 0}, "escalation": {"enabled": 0},
 "reclaim": {"enabled": 0}}'
cat >"$WORK/config.json" <<EOF
{"durability": "durable", "connections_max": 12000, "compact_records": 0, "policy": $POLICY_OFF}
EOF
"$BIN" serve --listen 127.0.0.1:0 --data "$WORK/data" --config "$WORK/config.json" \
    2>"$WORK/server.log" &
SERVER_PID=$!
# shellcheck source=bench/machine.sh
. "$ROOT/bench/machine.sh"
wait_listening "$WORK/server.log" "$SERVER_PID"
[ -n "$PORT" ] || { echo "flood.sh: the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
curl -s -o /dev/null -X PUT "http://127.0.0.1:$PORT/v1/skus/hot" -d '{"stock": 1099511627776}'

kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
rss() { awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/"$SERVER_PID"/status; }

echo "holdfast connection flood, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
echo "machine:  $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "server:   127.0.0.1:$PORT, durable, connections_max 12000, default deadlines and caps"

# phase NAME IDLE SLOW KEPT: the shoppers for SECS, with this flood around
# them.
phase() {
    local name=$1 idle=$2 slow=$3 kept=$4 line load_line
    "$TOOLS/hf_flood" --port "$PORT" --idle "$idle" --slow "$slow" --kept "$kept" --sources "$SOURCES" \
        --probe-rate "$PROBES" -d $((SECS + 20)) >"$WORK/flood.out" 2>"$WORK/flood.err" &
    FLOOD_PID=$!
    for _ in $(seq 600); do
        grep -q HF_FLOOD_READY "$WORK/flood.err" && break
        kill -0 "$FLOOD_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "== $name: $(grep -o 'open=[0-9]*' "$WORK/flood.err" | head -1 | sed 's/open=//') flood connections open; server RSS $(rss)"
    load_line=$("$TOOLS/hf_load" holds --port "$PORT" -c 4 --rate "$RATE" --skus 0 -d "$SECS" 2>&1 | grep 'type=all')
    echo "   kept-alive shop backend, $RATE holds/s: p50 $(ms "$(kv "$load_line" p50_us)") ms, p99 $(ms "$(kv "$load_line" p99_us)") ms, bad_status=$(kv "$load_line" bad_status) errors=$(kv "$load_line" errors)"
    wait "$FLOOD_PID"
    FLOOD_PID=
    line=$(grep '^HF_FLOOD ' "$WORK/flood.out")
    echo "   new visitors, a fresh connection per hold, $PROBES/s: p50 $(kv "$line" p50_ms) ms, p90 $(kv "$line" p90_ms) ms, p99 $(kv "$line" p99_ms) ms, max $(kv "$line" max_ms) ms ($(kv "$line" probe_201) x 201, other=$(kv "$line" probe_other) errors=$(kv "$line" probe_errors))"
    if [ $((idle + slow + kept)) -gt 0 ]; then
        echo "   flood: opened $(kv "$line" opened), closed by the server $(kv "$line" closed_by_server), refused $(kv "$line" refused), open at the end $(kv "$line" open_at_end); server RSS $(rss)"
    fi
}

phase "baseline (no flood)" 0 0 0
phase "flood: $IDLE idle + $SLOW slow-header connections from $SOURCES addresses" "$IDLE" "$SLOW" 0
if [ "$KEPT" -gt 0 ]; then
    phase "flood: $KEPT kept-alive idle connections (one request each) from $SOURCES addresses" 0 0 "$KEPT"
fi
echo "== the server's count"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^holdfast_connection' | sed 's/^/   /'
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) at the end"
