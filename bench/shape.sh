#!/usr/bin/env bash
# bench/shape.sh - what bounds a durable hold's rate on this machine:
# holdfast beside a probe of the other threading shape and beside Redis, in
# one run (docs/BENCHMARKS.md, "What bounds a hold").
#
#   scripts/deps.sh bench && make && ./bench/shape.sh     # about 7 minutes
#
# build/bench/h2o_probe (bench/h2o_probe.c; built when scripts/deps.sh bench
# has installed libh2o-evloop) answers GET /healthz and POST /v1/holds on
# h2o's event loop; each hold's reply waits for a commit thread's pwrite and
# fdatasync, and the thread that learns of a commit wakes each event loop
# once for the whole batch. holdfast answers the same two routes with
# libmicrohttpd, whose replies are suspended and resumed one by one.
#
# Each round runs, one at a time, with 32 connections:
#   probe        the probe doing no work but the durable wait: the most any
#                server can do here with this transport and this disk
#   probe+work   the probe spending, per hold and per commit, the CPU that
#                holdfast's own code takes (HF_SHAPE_WORK_US on the event
#                loop, HF_SHAPE_COMMIT_WORK_US on the commit thread): what
#                holdfast would do on the other shape
#   holdfast     durable, defenses off as in `make bench`
#   holdfast-h2o holdfast's own request path on h2o's event loop, waking
#                each loop once per commit (build/bench/h2o_holdfast: the
#                router, handlers, guard and journal of the server, without
#                its listener, caps or event streams), the same settings
#   redis        Redis 7 + Lua, appendfsync always (bench/peers.sh), if
#                scripts/deps.sh bench installed it
# Each runs holds on one hot sku with wrk and bench/holds.lua
# (redis-benchmark for Redis), then GET /healthz (the HTTP servers). Each
# figure is also given as a ratio to the Redis run of its own round, since
# this machine's speed drifts by a third within minutes; the last lines give
# the ratios of the rounds' means.
#
# After the rounds, the probe (no work) and both holdfasts run once more, each
# paced by build/bench/hf_load at half its own mean peak: the p99 a reply
# has here when nothing in the server but the durable wait takes time.
# Everything listens on 127.0.0.1 and runs for a bounded time.
#
# Environment: HF_SHAPE_ROUNDS=3, HF_SHAPE_SECONDS=8, HF_SHAPE_WORK_US=10,
# HF_SHAPE_COMMIT_WORK_US=15.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/holdfast
PROBE=$ROOT/build/bench/h2o_probe
HF_H2O=$ROOT/build/bench/h2o_holdfast
LOAD=$ROOT/build/bench/hf_load
ROUNDS=${HF_SHAPE_ROUNDS:-3}
SECS=${HF_SHAPE_SECONDS:-8}
# holdfast's own CPU per hold, from `perf record` of a durable c=32 run
# (holdfast, jansson and libcrypto samples: about 10 µs a hold), and per
# group commit (SQLite's samples: about 15 µs a commit of 8 holds).
WORK_US=${HF_SHAPE_WORK_US:-10}
COMMIT_WORK_US=${HF_SHAPE_COMMIT_WORK_US:-15}
ROUNDS_MAX=20
SECONDS_MAX=60

for v in "$ROUNDS:1:$ROUNDS_MAX" "$SECS:1:$SECONDS_MAX" "$WORK_US:0:10000" "$COMMIT_WORK_US:0:10000"; do
    IFS=: read -r n lo hi <<<"$v"
    if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt "$lo" ] || [ "$n" -gt "$hi" ]; then
        echo "shape.sh: '$n' is not a whole number from $lo to $hi (HF_SHAPE_*)" >&2
        exit 2
    fi
done
for f in "$BIN" "$PROBE" "$HF_H2O" "$LOAD"; do
    [ -x "$f" ] || { echo "shape.sh: $f is missing: scripts/deps.sh bench, then make" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "shape.sh: wrk is not installed (scripts/deps.sh)" >&2; exit 2; }

WORK=$(mktemp -d "$ROOT/build/shape.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    redis_stop
    rm -rf "$WORK"
}
trap cleanup EXIT

# What bench/peers.sh takes from run.sh: its settings, a timed load
# generator, a table row (none here), and the server CPU measure.
LUA=$ROOT/bench
TTL_MS=5000
STOCK=1099511627776 # 2^40, the API's maximum: holds never run out
TICKS=$(getconf CLK_TCK)
MEASURE_PID=
gen() { "$@"; }
row() { :; }
measure_start() { M_TICKS=$(awk '{ print $14 + $15 }' /proc/"$MEASURE_PID"/stat); }
measure_end() { # REQUESTS: sets SRV_US_PER_REQ
    local t
    t=$(($(awk '{ print $14 + $15 }' /proc/"$MEASURE_PID"/stat) - M_TICKS))
    SRV_US_PER_REQ=$(awk -v t="$t" -v hz="$TICKS" -v n="$1" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
    SRV_CPU_PCT=- GEN_CPU_PCT=-
}
# shellcheck source=bench/peers.sh
. "$ROOT/bench/peers.sh"
# shellcheck source=bench/machine.sh
. "$ROOT/bench/machine.sh"

POLICY_OFF=$(cat "$ROOT/bench/policy-off.json") # every defense switched off (docs/POLICIES.md)

# wrk_rate LUA URL ARGS...: "rps p50_us p99_us errors requests"
wrk_rate() {
    local lua=$1 url=$2 line
    shift 2
    line=$(wrk -t2 -c32 -d"${SECS}s" --timeout 10s -s "$lua" "$url" -- "$@" 2>&1 | grep '^HF_WRK')
    awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           print v["rps"] + 0, v["p50_us"] + 0, v["p99_us"] + 0,
                 v["non2xx"] + v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["timeouts"], v["requests"] + 0 }' <<<"$line"
}

# measure NAME URL: holds, then healthz, against PID at URL; one line, and
# the holds/s appended to $WORK/NAME.holds
measure() {
    local h z
    MEASURE_PID=$PID
    measure_start
    h=$(wrk_rate "$ROOT/bench/holds.lua" "$2" 0 $TTL_MS)
    read -r hr hp50 hp99 herr hn <<<"$h"
    measure_end "$hn"
    z=$(wrk_rate "$ROOT/bench/healthz.lua" "$2")
    read -r zr _ _ zerr _ <<<"$z"
    echo "$hr" >>"$WORK/$1.holds"
    echo "$zr" >>"$WORK/$1.healthz"
    awk -v n="$1" -v hr="$hr" -v hp50="$hp50" -v hp99="$hp99" -v herr="$herr" -v cpu="$SRV_US_PER_REQ" -v zr="$zr" -v zerr="$zerr" \
        'BEGIN { printf "  %-12s holds %6d/s (p50 %.2f ms, p99 %.2f ms, %s µs of CPU each, errors %d)  healthz %6d/s (errors %d)  holds/healthz %.2f\n",
                 n, hr, hp50 / 1000, hp99 / 1000, cpu, herr, zr, zerr, (zr > 0 ? hr / zr : 0) }'
}

wait_http() { # PORT: up to 5 s for GET /healthz to answer
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$1/healthz" && return 0; sleep 0.1; done
    return 1
}

# paced NAME PORT RATE: one hf_load run of holds at RATE/s, after 2 s
# unpaced to warm the server up (a new server's first touches of its
# memory are slow on this VM); one line
paced() {
    local line
    "$LOAD" holds --port "$2" -c 32 -d 2 --skus 1 >/dev/null 2>&1
    line=$("$LOAD" holds --port "$2" -c 32 -d "$SECS" --skus 1 --rate "$3" 2>&1 | grep 'type=all')
    awk -v n="$1" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "  %-12s paced at %d/s: %d holds/s, p50 %.2f ms, p99 %.2f ms (bad replies %d, errors %d)\n",
            n, v["rate_target"], v["holds_per_s"], v["p50_us"] / 1000, v["p99_us"] / 1000, v["bad_status"], v["errors"] }' <<<"$line"
}

probe_round() { # NAME WORK_US COMMIT_WORK_US [PACED_RATE]
    local port
    port=$(free_port)
    "$PROBE" --port "$port" --threads 2 --journal "$WORK/probe.journal" --work-us "$2" \
        --commit-work-us "$3" 2>"$WORK/probe.log" &
    PID=$!
    wait_http "$port" || { echo "shape.sh: the probe did not start:" >&2; cat "$WORK/probe.log" >&2; exit 1; }
    if [ -n "${4:-}" ]; then
        paced "$1" "$port" "$4"
    else
        measure "$1" "http://127.0.0.1:$port"
    fi
    kill "$PID"; wait "$PID" 2>/dev/null; PID=
}

holdfast_round() { # [PACED_RATE]
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
    curl -s -o /dev/null -X PUT -H 'Content-Type: application/json' -d "{\"stock\": $STOCK}" \
        "http://127.0.0.1:$port/v1/skus/hot"
    if [ -n "${1:-}" ]; then
        "$LOAD" skus --port "$port" --count 1 --stock "$STOCK" -c 1 >/dev/null 2>&1 # hf_load's own sku
        paced holdfast "$port" "$1"
    else
        measure holdfast "http://127.0.0.1:$port"
    fi
    kill -TERM "$PID"; wait "$PID" 2>/dev/null; PID=
}

holdfast_h2o_round() { # [PACED_RATE]
    local port
    port=$(free_port)
    rm -rf "$WORK/h2o-data"
    "$HF_H2O" --port "$port" --data "$WORK/h2o-data" --threads 2 \
        --policy "$ROOT/bench/policy-off.json" 2>"$WORK/h2o-holdfast.log" &
    PID=$!
    wait_http "$port" || { echo "shape.sh: h2o_holdfast did not start:" >&2; cat "$WORK/h2o-holdfast.log" >&2; exit 1; }
    curl -s -o /dev/null -X PUT -H 'Content-Type: application/json' -d "{\"stock\": $STOCK}" \
        "http://127.0.0.1:$port/v1/skus/hot"
    if [ -n "${1:-}" ]; then
        "$LOAD" skus --port "$port" --count 1 --stock "$STOCK" -c 1 >/dev/null 2>&1
        paced holdfast-h2o "$port" "$1"
    else
        measure holdfast-h2o "http://127.0.0.1:$port"
    fi
    kill "$PID"; wait "$PID" 2>/dev/null; PID=
}

redis_round() {
    REDIS_HOLDS=
    rm -rf "$WORK/peers-redis" # a new server each round, without the last one's file
    peer_redis >"$WORK/redis.out" 2>&1
    if [ -z "$REDIS_HOLDS" ]; then
        echo "  redis        $(grep -m1 -E 'skipped|BAD' "$WORK/redis.out" | sed 's/^ *//')"
        return
    fi
    echo "$REDIS_HOLDS" >>"$WORK/redis.holds"
    echo "  redis        holds $(printf '%6d' "$REDIS_HOLDS")/s ($(grep -o 'p50 [0-9.]* ms, p99 [0-9.]* ms' "$WORK/redis.out"), $SRV_US_PER_REQ µs of CPU each)"
}

# ratios ROUND: each server's holds/s over Redis's in that round
ratios() {
    local line="  to Redis:" n r
    r=$(sed -n "${1}p" "$WORK/redis.holds" 2>/dev/null)
    for n in probe probe+work holdfast holdfast-h2o; do
        line="$line $n $(ratio "$(sed -n "${1}p" "$WORK/$n.holds")" "$r" x),"
    done
    echo "${line%,}"
}

mean() { awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n }' "$1" 2>/dev/null; }

echo "== shape: $(nproc) cores, $(uname -r), $ROUNDS rounds of $SECS s per run, 32 connections;" \
    "probe+work spends $WORK_US µs a hold and $COMMIT_WORK_US µs a commit"
echo "   disk, 4 KiB overwrite+fdatasync: $(flush_latency "$WORK")"
for r in $(seq "$ROUNDS"); do
    echo "round $r"
    probe_round probe 0 0
    probe_round probe+work "$WORK_US" "$COMMIT_WORK_US"
    holdfast_round
    holdfast_h2o_round
    redis_round
    ratios "$r"
done
R=$(mean "$WORK/redis.holds")
line1="means of the rounds: holds/s" line2="  to Redis:" line3="  holds/healthz:"
for n in probe probe+work holdfast holdfast-h2o; do
    line1="$line1 $n $(mean "$WORK/$n.holds"),"
    line2="$line2 $n $(ratio "$(mean "$WORK/$n.holds")" "$R" x),"
    line3="$line3 $n $(ratio "$(mean "$WORK/$n.holds")" "$(mean "$WORK/$n.healthz")"),"
done
echo "$line1 redis ${R:--}"
echo "${line2%,}"
echo "${line3%,}"
echo "   disk, 4 KiB overwrite+fdatasync: $(flush_latency "$WORK")"
echo "paced at half the mean peak (hf_load, 32 connections, $SECS s; latency from each request's planned send)"
probe_round probe 0 0 "$(($(mean "$WORK/probe.holds") / 2))"
holdfast_round "$(($(mean "$WORK/holdfast.holds") / 2))"
holdfast_h2o_round "$(($(mean "$WORK/holdfast-h2o.holds") / 2))"
echo "   disk, 4 KiB overwrite+fdatasync: $(flush_latency "$WORK")"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
