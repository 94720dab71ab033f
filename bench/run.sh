#!/usr/bin/env bash
# bench/run.sh - holdfast's benchmarks (docs/BENCHMARKS.md). `make bench`
# builds, then runs this. It builds nothing itself.
#
# It starts servers on ephemeral 127.0.0.1 ports with fresh data directories
# under build/ (on the project's disk, so fdatasync is real), drives them with
# wrk and build/bench/hf_load, stops them with SIGTERM, runs the in-process
# engine benchmark, and prints a summary table. Everything it prints also
# goes to build/bench/results-DATE.txt.
#
# Environment:
#   HF_BENCH_SECONDS=10        seconds per load run; the whole run takes about
#                              40 times this, plus loading and the engine
#                              (about 8 minutes at the default)
#   HF_BENCH_ENGINE_SECONDS=2  seconds per engine throughput case
#   HF_BENCH_WRK_THREADS=2     wrk threads for runs with more than 1 connection
#   HF_BENCH_ONLY=...          space-separated groups to run (default all):
#                              durable-hot durable-100k relaxed-hot relaxed-100k
#                              peers threads1 rates compaction policy accesslog
#                              engine
#
# The `peers` group runs the same hold, on one hot sku at 32 connections, in
# holdfast (durable), Redis 7 (a Lua script, appendfsync always) and
# PostgreSQL 15 (a conditional UPDATE and an INSERT in one transaction,
# synchronous_commit on), each peer a throwaway instance on its own loopback
# port, then holdfast again, and prints holdfast's holds/s as ratios to them
# and to its own GET /healthz (docs/BENCHMARKS.md). It needs
# `scripts/deps.sh bench` (make bench runs it) and skips a peer whose package
# is missing.
#
# Every group but `policy` runs with the defenses off (the core's hold path,
# comparable across versions); `policy` runs the same load with the default
# policy and with it off, to show what the defenses cost.
#
# Servers run with the default HTTP threads (2) except in the threads1 group,
# which repeats some runs with threads 1 for comparison.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/holdfast
LOAD=$ROOT/build/bench/hf_load
ENGINE=$ROOT/build/bench/bench_engine
LUA=$ROOT/bench
SECS=${HF_BENCH_SECONDS:-10}
ENGINE_SECS=${HF_BENCH_ENGINE_SECONDS:-2}
WRK_THREADS=${HF_BENCH_WRK_THREADS:-2}
ONLY=${HF_BENCH_ONLY:-durable-hot peers durable-100k relaxed-hot relaxed-100k threads1 rates compaction policy accesslog engine}
T=2 # the server's default HTTP threads
SKUS=100000
TTL_MS=5000
STOCK=1099511627776 # 2^40, the API's maximum: holds never run out

for f in "$BIN" "$LOAD" "$ENGINE"; do
    [ -x "$f" ] || { echo "run.sh: $f is missing; run make first (make bench does)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "run.sh: wrk is not installed (apt-get install wrk)" >&2; exit 2; }

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$ROOT/build/bench/results-$STAMP.txt
WORK=$(mktemp -d "$ROOT/build/bench-run.XXXXXX")
SUMMARY=$WORK/summary.tsv
SERVER_PID=
PORT=
GROUP=
REDIS_PID= # the peers' servers, stopped by cleanup if still running
PG_PID=
PG_DIR=    # PostgreSQL's directory, owned by the user it runs as
exec > >(tee "$OUT") 2>&1

cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    redis_stop
    pg_stop
    rm -rf "$WORK" ${PG_DIR:+"$PG_DIR"}
}
trap cleanup EXIT
trap 'exit 130' INT TERM

want() { [[ " $ONLY " == *" $1 "* ]]; }

# kv LINE KEY: the value of key=value in LINE.
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

ms() { awk -v us="$1" 'BEGIN { if (us == "") print "-"; else printf "%.2f", us / 1000 }'; }

# row SCENARIO TOOL CONNS DURABILITY THREADS REQ/S P50_US P99_US CHECK, plus
# the CPU figures of the last measure_end.
row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
        "$7" "$8" "$SRV_US_PER_REQ" "$SRV_CPU_PCT" "$GEN_CPU_PCT" "$9" >>"$SUMMARY"
}

# CPU accounting: the server's from /proc, the load generator's from
# /usr/bin/time, both over the run's wall time. The server measured is
# MEASURE_PID if set (a peer's, in the peers group), else SERVER_PID.
MEASURE_PID=
TICKS=$(getconf CLK_TCK)
# utime + stime, plus cutime + cstime: the CPU of reaped snapshot children.
# With SERVER_TREE=1 (PostgreSQL: a process per connection), also the CPU of
# its live children; those that exited count in cutime + cstime once reaped.
SERVER_TREE=0
children() { # PID: its children's pids
    local f
    for f in /proc/[0-9]*/stat; do
        [ "$(sed 's/^.*) //' "$f" 2>/dev/null | cut -d' ' -f2)" = "$1" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
}
server_ticks() {
    local t c pid=${MEASURE_PID:-$SERVER_PID}
    t=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/"$pid"/stat)
    if [ "$SERVER_TREE" = 1 ]; then
        for c in $(children "$pid"); do
            t=$((t + $(sed 's/^.*) //' /proc/"$c"/stat 2>/dev/null | awk '{ print $12 + $13 + 0 }')))
        done
    fi
    echo "$t"
}
thread_ticks() { # "tid name ticks" per server thread
    local t
    for t in /proc/"${MEASURE_PID:-$SERVER_PID}"/task/*; do
        printf '%s %s %s\n' "${t##*/}" "$(tr ' ' _ <"$t/comm")" "$(sed 's/^.*) //' "$t/stat" | awk '{ print $12 + $13 }')"
    done 2>/dev/null
}
measure_start() { M_TICKS=$(server_ticks); thread_ticks >"$WORK/threads.start"; M_T0=$(date +%s%N); }
# measure_end REQUESTS: sets SRV_US_PER_REQ, SRV_CPU_PCT, GEN_CPU_PCT.
measure_end() {
    local ticks wall gen
    ticks=$(($(server_ticks) - M_TICKS))
    wall=$(($(date +%s%N) - M_T0))
    gen=$(cat "$WORK/gen.time" 2>/dev/null)
    SRV_US_PER_REQ=$(awk -v t="$ticks" -v hz="$TICKS" -v n="$1" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
    SRV_CPU_PCT=$(awk -v t="$ticks" -v hz="$TICKS" -v w="$wall" 'BEGIN { printf "%.0f", t / hz / (w / 1e9) * 100 }')
    GEN_CPU_PCT=$(awk -v g="$gen" -v w="$wall" 'BEGIN { split(g, a, " "); printf "%.0f", (a[1] + a[2]) / (w / 1e9) * 100 }')
    # Per thread: the main thread is the clock tick, hf-journal the
    # journal's commit thread, MHD-* the HTTP threads, hf-accept the
    # listener (src/hf_thread.h names them). Snapshot children are not
    # threads: they count in the total above, not here.
    THREADS_NOTE=$(thread_ticks | awk -v hz="$TICKS" -v w="$wall" -v pid="${MEASURE_PID:-$SERVER_PID}" -v f="$WORK/threads.start" '
        BEGIN { while ((getline l < f) > 0) { split(l, a, " "); start[a[1]] = a[3] } }
        { name = $1 == pid ? "tick" : $2; sub(/^hf-/, "", name)
          pct = ($3 - start[$1]) / hz / (w / 1e9) * 100
          if (pct >= 1) out = out sprintf("%s%s %.0f%%", out == "" ? "" : ", ", name, pct) }
        END { print out }')
}
# gen COMMAND...: runs the load generator, timing its CPU.
gen() { /usr/bin/time -f '%U %S' -o "$WORK/gen.time" "$@"; }
cpu_note() { echo "server CPU ${SRV_US_PER_REQ} us/request (${SRV_CPU_PCT}% of a core: ${THREADS_NOTE}), load generator ${GEN_CPU_PCT}%"; }

# The peers group's servers and runs (peer_redis, peer_pg, peers_summary).
# shellcheck source=bench/peers.sh
. "$LUA/peers.sh"

# ------------------------------------------------------------------ machine


# shellcheck source=bench/machine.sh
. "$ROOT/bench/machine.sh"
run_header "holdfast benchmarks" \
    "make bench  (bench/run.sh; HF_BENCH_SECONDS=$SECS HF_BENCH_ENGINE_SECONDS=$ENGINE_SECS HF_BENCH_WRK_THREADS=$WRK_THREADS)" "$ROOT"
echo "disk:     data under $WORK ($(df -T "$WORK" | awk 'NR == 2 {print $1 ", " $2}')); 4 KiB write+fdatasync (dd oflag=dsync): $(fsync_latency_us "$WORK") us"
echo "          4 KiB overwrite+fdatasync, as the journal's reused log does (fsync_probe): $(flush_latency "$WORK")"
echo "tools:    $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), libmicrohttpd $(pkg-config --modversion libmicrohttpd 2>/dev/null), sqlite $(pkg-config --modversion sqlite3 2>/dev/null)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average at start; the load generator shares the CPUs with the server)"
echo

# ------------------------------------------------------------------ servers

POLICY_OFF=$(cat "$ROOT/bench/policy-off.json") # every defense switched off (docs/POLICIES.md)

# start_server DURABILITY THREADS [COMPACT_RECORDS [POLICY [ACCESS_LOG]]]: a
# fresh server; sets SERVER_PID and PORT. ACCESS_LOG is the access_log
# setting (off, stderr, a file); without it, the default (stderr, which goes
# to server.log here). Compaction (a snapshot every COMPACT_RECORDS
# journal records) is off unless asked for: its stalls are measured on their
# own. POLICY "default" keeps the default policy; otherwise the defenses are
# off. The per-address connection cap is off: the load generators are one
# address standing in for many clients (up to 256 connections).
start_server() {
    local dir=$WORK/$GROUP
    local policy=", \"policy\": $POLICY_OFF" access_log=
    [ "${4:-off}" = default ] && policy=""
    [ -n "${5:-}" ] && access_log=", \"access_log\": \"$5\""
    mkdir -p "$dir"
    cat >"$dir/config.json" <<EOF
{"durability": "$1", "threads": $2, "holds_max": 10000000, "skus_max": 1000000,
 "connections_per_address_max": 0, "compact_records": ${3:-0}$policy$access_log}
EOF
    "$BIN" serve --listen 127.0.0.1:0 --data "$dir/data" --config "$dir/config.json" \
        2>"$dir/server.log" &
    SERVER_PID=$!
    wait_listening "$dir/server.log" "$SERVER_PID"
    if [ -z "$PORT" ]; then
        echo "run.sh: the server did not start:" >&2
        cat "$dir/server.log" >&2
        exit 1
    fi
    echo "== $GROUP: server pid $SERVER_PID on 127.0.0.1:$PORT, durability=$1 threads=$2"
}

metric() { # metric NAME_AND_LABELS: its value from /metrics (0 if absent)
    curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" 'index($0, m " ") == 1 { v = $2 } END { print v + 0 }'
}

holds_201() { metric 'holdfast_http_requests_total{route="/v1/holds",status="201"}'; }

# The journal's group commits so far: count, mean, p50 and p99 (bucket upper
# bounds), records per commit, snapshots.
journal_report() {
    curl -s "http://127.0.0.1:$PORT/metrics" | awk '
        /^holdfast_journal_commit_seconds_bucket/ {
            match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
            n++; les[n] = le; cum[n] = $2 }
        /^holdfast_journal_commit_seconds_sum/ { sum = $2 }
        /^holdfast_journal_commit_seconds_count/ { count = $2 }
        /^holdfast_journal_records_total/ { records = $2 }
        /^holdfast_journal_snapshots_total/ { snaps = $2 }
        function q(p,   i) { for (i = 1; i <= n; i++) if (cum[i] >= p * count) return les[i]; return "+Inf" }
        END {
            if (count == 0) { print "   journal: no commits"; exit }
            printf "   journal: %d group commits, mean %.3f ms, p50 <= %s ms, p99 <= %s ms, max <= %s ms, %.1f records/commit, %d snapshots\n",
                count, sum / count * 1000, (q(0.5) == "+Inf" ? "inf" : q(0.5) * 1000),
                (q(0.99) == "+Inf" ? "inf" : q(0.99) * 1000), (q(1) == "+Inf" ? "inf" : q(1) * 1000),
                records / count, snaps }'
}

stop_server() {
    journal_report
    echo "   server RSS at the end: $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/"$SERVER_PID"/status)"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID"
    echo "   stopped (exit $?)"
    SERVER_PID=
    echo
}

load_skus() {
    local line
    line=$("$LOAD" skus --port "$PORT" --count $SKUS --stock $STOCK -c 16 2>&1 | grep 'type=all')
    echo "   loaded $SKUS skus: $(kv "$line" rps) PUT/s, bad_status=$(kv "$line" bad_status) errors=$(kv "$line" errors)"
}

# ------------------------------------------------------------------ runs

PEAK_HOLDS= # holds/s of the last wrk hold run at 32 connections
HOLDS_OK=   # 1 if every reply of the last wrk hold run was checked good

# wrk_holds SCENARIO DURABILITY THREADS CONNS SKUS(0=hot) [BUYERS]
wrk_holds() {
    local scenario=$1 dur=$2 threads=$3 conns=$4 skus=$5 buyers=${6:-0}
    local t=$WRK_THREADS
    [ "$conns" -lt "$t" ] && t=$conns
    local before after line created check
    before=$(holds_201)
    measure_start
    line=$(gen wrk -t"$t" -c"$conns" -d"${SECS}s" --latency -s "$LUA/holds.lua" \
        "http://127.0.0.1:$PORT" -- "$skus" $TTL_MS s- "$buyers" | grep '^HF_WRK')
    measure_end "$(kv "$line" requests)"
    after=$(holds_201)
    created=$((after - before))
    local requests non2xx errors
    requests=$(kv "$line" requests)
    non2xx=$(kv "$line" non2xx)
    errors=$(($(kv "$line" connect_errors) + $(kv "$line" read_errors) + $(kv "$line" write_errors) + $(kv "$line" timeouts)))
    # wrk counts completed requests; the server may have answered a few more
    # whose replies were in flight when wrk stopped.
    if [ "$non2xx" = 0 ] && [ "$errors" = 0 ] && [ "$created" -ge "$requests" ]; then
        check="ok: $created x 201"
        HOLDS_OK=1
    else
        HOLDS_OK=0
        check="BAD: non-2xx=$non2xx errors=$errors 201s=$created of $requests"
    fi
    echo "   wrk $scenario c=$conns: $(kv "$line" rps) holds/s, p50 $(ms "$(kv "$line" p50_us)") ms, p99 $(ms "$(kv "$line" p99_us)") ms, p99.9 $(ms "$(kv "$line" p999_us)") ms, max $(ms "$(kv "$line" max_us)") ms ($check)"
    echo "      $(cpu_note)"
    row "$scenario" wrk "$conns" "$dur" "$threads" "$(kv "$line" rps)" "$(kv "$line" p50_us)" "$(kv "$line" p99_us)" "$check"
    [ "$conns" = 32 ] && PEAK_HOLDS=$(kv "$line" rps)
    sleep 1
}

HEALTHZ_32= # GET /healthz requests/s of the last run at 32 connections

wrk_healthz() {
    local dur=$1 threads=$2 conns=$3 t=$WRK_THREADS line check
    [ "$conns" -lt "$t" ] && t=$conns
    measure_start
    line=$(gen wrk -t"$t" -c"$conns" -d"${SECS}s" --latency -s "$LUA/healthz.lua" \
        "http://127.0.0.1:$PORT" | grep '^HF_WRK')
    measure_end "$(kv "$line" requests)"
    check=ok
    [ "$(kv "$line" non2xx)" = 0 ] || check="BAD: non-2xx=$(kv "$line" non2xx)"
    echo "   wrk GET /healthz c=$conns: $(kv "$line" rps) req/s, p50 $(ms "$(kv "$line" p50_us)") ms, p99 $(ms "$(kv "$line" p99_us)") ms ($check)"
    echo "      $(cpu_note)"
    row "GET /healthz (baseline)" wrk "$conns" "$dur" "$threads" "$(kv "$line" rps)" "$(kv "$line" p50_us)" "$(kv "$line" p99_us)" "$check"
    [ "$conns" = 32 ] && HEALTHZ_32=$(kv "$line" rps)
    sleep 1
}

# load_run SCENARIO DURABILITY THREADS -- hf_load arguments...
load_run() {
    local scenario=$1 dur=$2 threads=$3
    shift 4
    local out all check
    measure_start
    out=$(gen "$LOAD" "$@" --port "$PORT" -d "$SECS" 2>"$WORK/load.err")
    all=$(grep 'type=all' <<<"$out")
    measure_end "$(kv "$all" requests)"
    [ -s "$WORK/load.err" ] && sort "$WORK/load.err" | uniq -c | sed 's/^/      hf_load said: /' 
    if [ "$(kv "$all" bad_status)" = 0 ] && [ "$(kv "$all" errors)" = 0 ]; then
        check=ok
    else
        check="BAD: bad_status=$(kv "$all" bad_status) errors=$(kv "$all" errors)"
    fi
    local conns rate
    conns=$(kv "$all" conns)
    rate=$(kv "$all" rate_target)
    [ "$rate" = 0 ] && rate=
    echo "   hf_load $scenario c=$conns${rate:+ rate=$rate/s}: $(kv "$all" holds_per_s) holds/s ($(kv "$all" rps) requests/s), all requests p50 $(ms "$(kv "$all" p50_us)") ms, p99 $(ms "$(kv "$all" p99_us)") ms ($check)"
    while read -r l; do
        [ -n "$l" ] || continue
        echo "      $(kv "$l" type): $(kv "$l" rps)/s p50 $(ms "$(kv "$l" p50_us)") ms p99 $(ms "$(kv "$l" p99_us)") ms p99.9 $(ms "$(kv "$l" p999_us)") ms ok=$(kv "$l" ok) bad=$(kv "$l" bad_status)$(sed -n 's/.*\( other_statuses=[^ ]*\).*/\1/p' <<<"$l")"
    done < <(grep -v 'type=all' <<<"$out")
    echo "      $(cpu_note)"
    row "$scenario" hf_load "$conns" "$dur" "$threads" "$(kv "$all" holds_per_s)" "$(kv "$all" p50_us)" "$(kv "$all" p99_us)" "$check"
    LAST_HOLDS=$(kv "$all" holds_per_s)
    sleep 1
}

half() { awk -v r="$1" 'BEGIN { printf "%d", r / 2 }'; }

# ------------------------------------------------------------------ groups

put_hot() {
    curl -s -o /dev/null -X PUT "http://127.0.0.1:$PORT/v1/skus/hot" -d "{\"stock\": $STOCK}"
}

# disk_now: the disk's flush latency just before a paced run, the floor of
# a durable reply's p99 (docs/BENCHMARKS.md, What bounds p99).
disk_now() {
    local d
    d=$(flush_latency "$WORK")
    [ -n "$d" ] && echo "   the disk now, 4 KiB overwrite+fdatasync: $d"
}

# paced SCENARIO DURABILITY THREADS PEAK -- hf_load arguments...: a run paced
# at half of PEAK, skipped if no peak was measured.
paced() {
    local scenario=$1 dur=$2 threads=$3 peak=$4
    shift 5
    if [ -z "$peak" ] || [ "$peak" = 0 ]; then
        echo "   (skipped $scenario: no peak measured)"
        return
    fi
    disk_now
    load_run "$scenario" "$dur" "$threads" -- "$@" --rate "$(half "$peak")"
}

if want durable-hot; then
    GROUP=durable-hot
    start_server durable $T
    put_hot
    wrk_healthz durable $T 1
    wrk_healthz durable $T 32
    wrk_healthz durable $T 256
    wrk_holds "holds, hot sku" durable $T 1 0
    wrk_holds "holds, hot sku" durable $T 256 0
    wrk_holds "holds, hot sku" durable $T 32 0
    peak=$PEAK_HOLDS
    load_run "mix 50/50, hot sku" durable $T -- mix -c 32 --skus 0 --ttl $TTL_MS --commit-pct 50
    paced "holds, hot sku, paced at half the c=32 peak" durable $T "$peak" -- holds -c 32 --skus 0 --ttl $TTL_MS
    stop_server
fi

if want peers; then
    # holdfast's own durable hot-sku holds at 32 connections, just before
    # and just after the peers (its server idle meanwhile), so that the
    # ratios are of figures taken minutes apart at most: this machine's
    # speed drifts.
    GROUP=peers
    start_server durable $T
    echo "   the same hold on one hot sku, 32 connections, $SECS s, durable: holdfast, Redis, PostgreSQL, holdfast again"
    put_hot
    wrk_healthz durable $T 32
    hf_healthz=$HEALTHZ_32
    wrk_holds "holds, hot sku, before the peers" durable $T 32 0
    hf_before=$PEAK_HOLDS
    [ "$HOLDS_OK" = 1 ] || hf_before=
    REDIS_HOLDS=
    PG_HOLDS=
    peer_redis
    peer_pg
    wrk_holds "holds, hot sku, after the peers" durable $T 32 0
    hf_after=$PEAK_HOLDS
    [ "$HOLDS_OK" = 1 ] || hf_after=
    stop_server
    peers_summary "$hf_before" "$hf_after" "$hf_healthz"
fi

if want durable-100k; then
    GROUP=durable-100k
    start_server durable $T
    load_skus
    wrk_holds "holds, 100k skus" durable $T 1 $SKUS
    wrk_holds "holds, 100k skus" durable $T 256 $SKUS
    wrk_holds "holds, 100k skus" durable $T 32 $SKUS
    load_run "mix 50/50, 100k skus" durable $T -- mix -c 32 --skus $SKUS --ttl $TTL_MS --commit-pct 50
    paced "mix 50/50, 100k skus, paced at half its peak" durable $T "$LAST_HOLDS" -- mix -c 32 --skus $SKUS --ttl $TTL_MS --commit-pct 50
    stop_server
fi

if want relaxed-hot; then
    GROUP=relaxed-hot
    start_server relaxed $T
    put_hot
    wrk_holds "holds, hot sku" relaxed $T 1 0
    wrk_holds "holds, hot sku" relaxed $T 256 0
    wrk_holds "holds, hot sku" relaxed $T 32 0
    peak=$PEAK_HOLDS
    load_run "mix 50/50, hot sku" relaxed $T -- mix -c 32 --skus 0 --ttl $TTL_MS --commit-pct 50
    paced "holds, hot sku, paced at half the c=32 peak" relaxed $T "$peak" -- holds -c 32 --skus 0 --ttl $TTL_MS
    stop_server
fi

if want relaxed-100k; then
    GROUP=relaxed-100k
    start_server relaxed $T
    load_skus
    wrk_holds "holds, 100k skus" relaxed $T 1 $SKUS
    wrk_holds "holds, 100k skus" relaxed $T 256 $SKUS
    wrk_holds "holds, 100k skus" relaxed $T 32 $SKUS
    load_run "mix 50/50, 100k skus" relaxed $T -- mix -c 32 --skus $SKUS --ttl $TTL_MS --commit-pct 50
    stop_server
fi

if want threads1; then
    # The same loads with one HTTP thread, for comparison with the default.
    # 256 connections on one thread: libmicrohttpd 0.9.75's epoll loop stalled
    # whenever exactly 128 connections were ready at once; the server now uses
    # poll(), and these runs show the stall is gone.
    GROUP=durable-hot-threads1
    start_server durable 1
    put_hot
    wrk_healthz durable 1 32
    wrk_healthz durable 1 256
    wrk_holds "holds, hot sku" durable 1 256 0
    wrk_holds "holds, hot sku" durable 1 32 0
    stop_server
    GROUP=relaxed-hot-threads1
    start_server relaxed 1
    put_hot
    wrk_holds "holds, hot sku" relaxed 1 256 0
    wrk_holds "holds, hot sku" relaxed 1 32 0
    stop_server
fi

if want rates; then
    # Latency against offered load: fixed rates well below the peak, to see
    # where p99 crosses 1 ms. Half as long as the other runs.
    for mode in durable relaxed; do
        GROUP=$mode-hot-rates
        start_server $mode $T
        put_hot
        SECS_SAVED=$SECS
        SECS=$(((SECS + 1) / 2))
        disk_now
        for rate in 2000 5000 10000; do
            load_run "holds, hot sku, paced at $rate/s" $mode $T -- holds -c 32 --skus 0 --ttl $TTL_MS --rate $rate
        done
        SECS=$SECS_SAVED
        stop_server
    done
fi

if want compaction; then
    # The default compacts every 1,000,000 records; a quarter of that makes
    # several snapshots happen within one run. Each snapshot is written by a
    # forked child from its copy-on-write view; the server pauses only for
    # the fork, under the engine lock.
    GROUP=durable-hot-compaction
    start_server durable $T 250000
    put_hot
    SECS_SAVED=$SECS
    SECS=$((SECS * 3))
    wrk_holds "holds, hot sku, snapshot every 250k records" durable $T 32 0
    SECS=$SECS_SAVED
    echo "   last snapshot file: $(find "$WORK/$GROUP/data" -name 'snapshot-*.bin' -printf '%s bytes\n' 2>/dev/null | tail -1)"
    stop_server
fi

if want policy; then
    # The same crowd of distinct buyers (each its own customer id and /24),
    # hot sku, durable, 32 connections: first with every defense off, then
    # with the default policy, which lets each of these holds through after
    # checking it (caps, share, budget, reputation, challenge price).
    BUYERS=100000
    GROUP=durable-hot-buyers-off
    start_server durable $T 0 off
    put_hot
    wrk_holds "holds, hot sku, 100k buyers, defenses off" durable $T 32 0 $BUYERS
    OFF_HOLDS=$PEAK_HOLDS
    stop_server
    GROUP=durable-hot-buyers-default
    start_server durable $T 0 default
    put_hot
    wrk_holds "holds, hot sku, 100k buyers, default policy" durable $T 32 0 $BUYERS
    stop_server
    echo "   default policy keeps $(awk -v a="$PEAK_HOLDS" -v b="$OFF_HOLDS" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }') of the throughput without it"
    echo
fi

if want accesslog; then
    # What the access log costs: durable holds on the hot sku, 32
    # connections, with the log off and with it on (a file, as a server
    # behind logrotate has it), twice each, alternating, so drift in the
    # VM's speed falls on both. The ratio is on/off: 100% means free.
    declare -A AL_HOLDS=([off]=0 [on]=0) AL_US=([off]=0 [on]=0)
    for round in 1 2; do
        for mode in off on; do
            GROUP=durable-hot-accesslog-$mode-$round
            where=off
            [ $mode = on ] && where=$WORK/$GROUP/access.log
            start_server durable $T 0 off "$where"
            put_hot
            wrk_holds "holds, hot sku, access log $mode" durable $T 32 0
            AL_HOLDS[$mode]=$(awk -v a="${AL_HOLDS[$mode]}" -v b="$PEAK_HOLDS" 'BEGIN { print a + b }')
            AL_US[$mode]=$(awk -v a="${AL_US[$mode]}" -v b="$SRV_US_PER_REQ" 'BEGIN { print a + b }')
            [ $mode = on ] && echo "   access log: $(wc -l <"$where") lines, $(du -h "$where" | cut -f1), dropped $(metric 'holdfast_access_log_lines_total{outcome="dropped"}')"
            stop_server
        done
    done
    echo "   access log on/off: $(awk -v a="${AL_HOLDS[on]}" -v b="${AL_HOLDS[off]}" 'BEGIN { printf "%.1f%%", 100 * a / b }') of the holds/s, $(awk -v a="${AL_US[on]}" -v b="${AL_US[off]}" 'BEGIN { printf "%.1f%%", 100 * a / b }') of the server CPU per request (sums of two rounds each)"
    echo
fi

if want engine; then
    echo "== engine (in process, one core)"
    "$ENGINE" "$ENGINE_SECS" | grep -v '^HF_ENGINE'
    echo
fi

# ------------------------------------------------------------------ summary

if [ -s "$SUMMARY" ]; then
    echo "== summary"
    echo "   holds/s: holds created per second (for GET /healthz: requests per second). In the"
    echo "   mix each hold is followed by its commit or release, so requests/s is twice that."
    echo "   p50/p99 over all requests. srv us/req: server CPU (all threads) per request;"
    echo "   srv/gen %: CPU of the server and of the load generator, in % of one core (2 in all)."
    {
        printf 'scenario\ttool\tconns\tdurability\tthreads\tholds/s\tp50 ms\tp99 ms\tsrv us/req\tsrv %%\tgen %%\treplies\n'
        awk -F'\t' 'function ms(us) { return us ~ /^[0-9.]+$/ ? sprintf("%.2f", us / 1000) : "-" }
            BEGIN { OFS = "\t" } { $7 = ms($7); $8 = ms($8); print }' "$SUMMARY"
    } | column -t -s $'\t'
fi
echo
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average at the end)"
echo "results:  $OUT"
