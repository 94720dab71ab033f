#!/usr/bin/env bash
# bench/cluster.sh - the journal in PostgreSQL (docs/BENCHMARKS.md, "The
# journal in PostgreSQL"). `make bench-cluster` builds, then runs this. It
# builds nothing itself.
#
# In one run, on 127.0.0.1 only: a PostgreSQL 15 primary with a synchronous
# standby (tests/cluster/pg.sh: every commit is flushed on both before it is
# acknowledged, so it survives the loss of either machine), and then
#
#   1. durable hot-sku holds at 32 connections (wrk, bench/holds.lua, a new
#      buyer each, the default policy: the settings of make bench's `policy`
#      group), alternating a server with the SQLite journal and one with the
#      journal in PostgreSQL, HF_CLUSTER_ROUNDS times, each PostgreSQL round
#      followed by GET /healthz on the same server; the ratios PostgreSQL /
#      SQLite and PostgreSQL / healthz are of figures taken seconds apart;
#   2. what bounds the PostgreSQL journal: the same load at 256 connections,
#      and once with commits that do not wait for the standby
#      (synchronous_commit = local for the journal's database; not a setting
#      to run with, only to show what the standby's round trip costs); then
#      PostgreSQL alone, driven by pgbench: the journal's own rows (4
#      clients, as a node's 4 connections), and the usual PostgreSQL-backed
#      shop's hold transaction at 32 clients (bench/peer-pg-hold.sql);
#   3. many shops: HF_CLUSTER_SHOPS_MAX holdfast processes, each the only
#      node of its own shop (--shop), all journaling to the same PostgreSQL,
#      loaded 1, 2, 4, ... at a time by one wrk per shop running together,
#      first with 32 connections split between them, then with 32 each;
#   4. two nodes against one: the first 4 of those shops, 32 connections
#      each, first all under one CPU cap standing in for one machine, then
#      split under two (bench/cpucap.sh; needs root, else skipped),
#      alternating HF_CLUSTER_ROUNDS times.
#
# Each run reports holds/s, latency, the CPU of the servers, of PostgreSQL
# (primary and standby, every process) and of wrk in % of one core, the whole
# machine's busy % (it is shared), and the group commits of the run (from
# GET /metrics holdfast_journal_commit_seconds: records per commit, mean and
# p50/p99 bucket bounds). Everything printed also goes to
# build/bench/cluster-DATE.txt. Every server and PostgreSQL are stopped on
# exit, whatever happens.
#
# Environment:
#   HF_CLUSTER_SECONDS=6        seconds per load run; the whole run takes about
#                               22 runs of this plus about 4 s each, and PostgreSQL
#                               (3.5 minutes at the default; more on a busy machine)
#   HF_CLUSTER_ROUNDS=2         SQLite / PostgreSQL alternations
#   HF_CLUSTER_SHOPS_MAX=8      the most shop processes (1, 2, 4, ... up to it)
#   HF_CLUSTER_NODE_CPU=25      section 4's cap of a node, % of one core: small
#                               enough that the holdfast side is the bound
#
# Needs wrk and PostgreSQL 15 (scripts/deps.sh bench installs both).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/holdfast
LUA=$ROOT/bench
SECS=${HF_CLUSTER_SECONDS:-6}
ROUNDS=${HF_CLUSTER_ROUNDS:-2}
SHOPS_MAX=${HF_CLUSTER_SHOPS_MAX:-8}
NODE_CPU=${HF_CLUSTER_NODE_CPU:-25}
NODE_SHOPS=$((SHOPS_MAX < 4 ? SHOPS_MAX : 4)) # the shops of section 4, on one node or split over two
CONNS=32          # make bench's main figure
CONNS_WIDE=256    # the other connection count make bench measures
WRK_THREADS=2
TTL_MS=5000
BUYERS=100000     # bench/holds.lua: a new buyer each, enough that the default policy lets all through
STOCK=1099511627776 # 2^40, the API's maximum: holds never run out

# shellcheck source=tests/cluster/pg.sh
. "$ROOT/tests/cluster/pg.sh"
# shellcheck source=bench/cpucap.sh
. "$ROOT/bench/cpucap.sh"
# shellcheck source=bench/machine.sh
. "$ROOT/bench/machine.sh"

[ -x "$BIN" ] || { echo "cluster.sh: $BIN is missing; run make first (make bench-cluster does)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "cluster.sh: wrk is not installed (scripts/deps.sh)" >&2; exit 2; }
pgh_available || { echo "cluster.sh: PostgreSQL 15 is not installed (scripts/deps.sh bench)" >&2; exit 2; }
[[ "$SHOPS_MAX" =~ ^[1-9][0-9]?$ ]] || { echo "cluster.sh: HF_CLUSTER_SHOPS_MAX must be 1..99" >&2; exit 2; }
[[ "$NODE_CPU" =~ ^[1-9][0-9]?$|^100$ ]] || { echo "cluster.sh: HF_CLUSTER_NODE_CPU must be 1..100 (% of a core)" >&2; exit 2; }

mkdir -p "$ROOT/build/bench"
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$ROOT/build/bench/cluster-$STAMP.txt
WORK=$(mktemp -d "$ROOT/build/cluster.XXXXXX")
chmod 755 "$WORK" # PostgreSQL runs as its own user when this runs as root (pg.sh)
PG_DIR=$WORK/pg
SUMMARY=$WORK/summary.tsv
PIDS=()    # every holdfast server running
PG_UP=0
CAPS=0     # bench/cpucap.sh's caps made
exec > >(tee "$OUT") 2>&1

stop_servers() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    PIDS=()
}
cleanup() {
    stop_servers
    [ "$CAPS" = 1 ] && { cpucap_remove node-a; cpucap_remove node-b; }
    [ "$PG_UP" = 1 ] && pgh_destroy "$PG_DIR" >/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TICKS=$(getconf CLK_TCK)

# ------------------------------------------------------------------ CPU

# ticks PID...: utime + stime + cutime + cstime of the processes, summed.
ticks() {
    local p v t=0
    for p in "$@"; do
        # a process that ended since it was listed counts nothing
        v=$(sed 's/^.*) //' /proc/"$p"/stat 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 + 0 }')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
pg_ticks() { local pids; mapfile -t pids < <(pgh_procs "$PG_PRIMARY_DATA" "$PG_STANDBY_DATA"); ticks "${pids[@]}"; }
# busy and total ticks of the whole machine (/proc/stat, all CPUs)
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# cpu_start SERVER_PID...: the counters before a run.
cpu_start() {
    C_SRV=$(ticks "$@")
    # PostgreSQL's backends live as long as their connections, which the
    # servers keep; the postmaster's cutime counts those that ended.
    C_PG=$(pg_ticks)
    read -r C_BUSY C_ALL < <(machine)
    C_T0=$(date +%s%N)
}
# cpu_end SERVER_PID...: SRV_PCT, PG_PCT, MACHINE_PCT of the run (% of one
# core; the machine's in % of all its cores), WALL_S.
cpu_end() {
    local srv pg busy all wall
    srv=$(($(ticks "$@") - C_SRV))
    pg=$(($(pg_ticks) - C_PG))
    read -r busy all < <(machine)
    wall=$(($(date +%s%N) - C_T0))
    WALL_S=$(awk -v w="$wall" 'BEGIN { printf "%.3f", w / 1e9 }')
    SRV_PCT=$(awk -v t="$srv" -v hz="$TICKS" -v w="$WALL_S" 'BEGIN { printf "%.0f", t / hz / w * 100 }')
    PG_PCT=$(awk -v t="$pg" -v hz="$TICKS" -v w="$WALL_S" 'BEGIN { printf "%.0f", t / hz / w * 100 }')
    MACHINE_PCT=$(awk -v b="$((busy - C_BUSY))" -v a="$((all - C_ALL))" 'BEGIN { printf "%.0f", (a > 0 ? b / a * 100 : 0) }')
}

# ------------------------------------------------------------------ servers

# start_server NAME [PG_URL SHOP]: a fresh durable server, default policy,
# with the SQLite journal or the journal in PostgreSQL; sets SERVER_PID and
# PORT, and adds the pid to PIDS.
start_server() {
    local name=$1 url=${2:-} shop=${3:-} dir=$WORK/$1
    mkdir -p "$dir"
    cat >"$dir/config.json" <<EOF
{"durability": "durable", "threads": 2, "holds_max": 10000000, "skus_max": 1000000,
 "connections_per_address_max": 0, "compact_records": 0}
EOF
    local journal=()
    [ -n "$url" ] && journal=(--journal "$url" --shop "$shop" --node "$name")
    "$BIN" serve --listen 127.0.0.1:0 --data "$dir/data" --config "$dir/config.json" "${journal[@]}" \
        2>"$dir/server.log" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_listening "$dir/server.log" "$SERVER_PID"
    if [ -z "$PORT" ]; then
        echo "cluster.sh: the server $name did not start:" >&2
        cat "$dir/server.log" >&2
        exit 1
    fi
    curl -s -o /dev/null -X PUT "http://127.0.0.1:$PORT/v1/skus/hot" -d "{\"stock\": $STOCK}"
}

# snap PORT: "holds_201 commits commit_sum_s records bucket_count..." now
snap() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '
        index($0, "holdfast_http_requests_total{route=\"/v1/holds\",status=\"201\"} ") == 1 { h = $2 }
        /^holdfast_journal_commit_seconds_bucket/ { b = b " " $2 }
        /^holdfast_journal_commit_seconds_sum/ { s = $2 }
        /^holdfast_journal_commit_seconds_count/ { c = $2 }
        /^holdfast_journal_records_total/ { r = $2 }
        END { print h + 0, c + 0, s + 0, r + 0 b }'
}
# The histogram's bucket bounds, in ms ("+Inf" last).
bounds() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^holdfast_journal_commit_seconds_bucket/ {
        match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
        printf "%s ", le == "+Inf" ? "inf" : le * 1000 }'
}

# journal_delta BEFORE AFTER BOUNDS: COMMITS, RECS_PER_COMMIT, COMMIT_MEAN_MS,
# COMMIT_P50_MS, COMMIT_P99_MS (bucket upper bounds) between two snaps.
journal_delta() {
    read -r COMMITS RECS_PER_COMMIT COMMIT_MEAN_MS COMMIT_P50_MS COMMIT_P99_MS < <(
        awk -v a="$1" -v b="$2" -v le="$3" 'BEGIN {
            na = split(a, x, " "); split(b, y, " "); split(le, l, " ")
            c = y[2] - x[2]
            if (c <= 0) { print 0, "-", "-", "-", "-"; exit }
            for (i = 5; i <= na; i++) d[i - 4] = y[i] - x[i]
            n = na - 4
            for (i = 1; i <= n; i++) { if (p50 == "" && d[i] >= 0.5 * c) p50 = l[i]; if (p99 == "" && d[i] >= 0.99 * c) p99 = l[i] }
            printf "%d %.1f %.2f %s %s\n", c, (y[4] - x[4]) / c, (y[3] - x[3]) / c * 1000, p50, p99 }')
}

# ------------------------------------------------------------------ where PostgreSQL waits

# sample_waits SECONDS: in the background, samples every 20 ms what each
# shop's journal session is doing (pg_stat_activity: the session named
# holdfast/SHOP/owner/NODE opened last; the first is the lease's), into
# $WORK/waits. idle: the session waits for holdfast's next commit;
# IPC:SyncRep: a commit waits for the standby's flush; LWLock:WALWrite or
# IO:WALSync: the primary's own WAL write and flush; running: on a CPU.
sample_waits() {
    local n=$(($1 * 50))
    cat >"$WORK/waits.sql" <<EOF
CREATE FUNCTION pg_temp.hf_waits(n int) RETURNS TABLE(what text, samples bigint) LANGUAGE plpgsql AS \$\$
DECLARE acc text[] := '{}';
BEGIN
  FOR i IN 1..n LOOP
    PERFORM pg_stat_clear_snapshot();
    acc := acc || ARRAY(SELECT DISTINCT ON (a.application_name)
        CASE WHEN a.state LIKE 'idle%' THEN 'idle' WHEN a.wait_event IS NULL THEN 'running'
             ELSE a.wait_event_type || ':' || a.wait_event END
      FROM pg_stat_activity a WHERE a.application_name LIKE 'holdfast/%/owner/%'
      ORDER BY a.application_name, a.backend_start DESC);
    PERFORM pg_sleep(0.02);
  END LOOP;
  RETURN QUERY SELECT x, count(*) FROM unnest(acc) x GROUP BY x ORDER BY 2 DESC;
END \$\$;
SELECT what || ' ' || round(100.0 * samples / sum(samples) OVER ()) || '%' FROM pg_temp.hf_waits($n);
EOF
    timeout $(($1 + 20)) "$PGH_BIN/psql" -X -q -A -t "$PG_URL" -f "$WORK/waits.sql" >"$WORK/waits" 2>&1 &
    SAMPLER_PID=$!
}

# ------------------------------------------------------------------ runs

# kv LINE KEY: the value of key=value in LINE.
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
ms() { awk -v us="$1" 'BEGIN { if (us == "") print "-"; else printf "%.2f", us / 1000 }'; }

# row SCENARIO SHOPS CONNS HOLDS/S P50_US P99_US CHECK, with the CPU and
# journal figures of the run.
row() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(ms "$5")" "$(ms "$6")" \
        "$RECS_PER_COMMIT" "$COMMIT_MEAN_MS" "$SRV_PCT" "$PG_PCT" "$GEN_PCT" "$MACHINE_PCT" "$7" >>"$SUMMARY"
}

# load SCENARIO CONNS_EACH LUA PORT...: one wrk per port, all at once, for
# SECS, each with CONNS_EACH connections; sets RATE (the sum) and CHECK, and
# prints a line. The servers measured are those of PORT_PIDS (same order).
load() {
    local scenario=$1 conns=$2 lua=$3 i n t
    shift 3
    local ports=("$@") before=() after=() bnd wrk_pids=()
    n=${#ports[@]}
    t=$WRK_THREADS
    [ "$n" -gt 1 ] && t=1 # one thread per wrk when several share the cores
    [ "$conns" -lt "$t" ] && t=$conns
    bnd=$(bounds "${ports[0]}")
    for i in "${!ports[@]}"; do before[i]=$(snap "${ports[i]}"); done
    cpu_start "${PORT_PIDS[@]}"
    for i in "${!ports[@]}"; do
        if [ "$lua" = healthz ]; then
            /usr/bin/time -f '%U %S' -o "$WORK/gen.$i" wrk -t"$t" -c"$conns" -d"${SECS}s" --latency \
                -s "$LUA/healthz.lua" "http://127.0.0.1:${ports[i]}" >"$WORK/wrk.$i" 2>&1 &
        else
            /usr/bin/time -f '%U %S' -o "$WORK/gen.$i" wrk -t"$t" -c"$conns" -d"${SECS}s" --latency \
                -s "$LUA/holds.lua" "http://127.0.0.1:${ports[i]}" -- 0 $TTL_MS s- $BUYERS >"$WORK/wrk.$i" 2>&1 &
        fi
        wrk_pids+=($!)
    done
    SAMPLER_PID=
    if [ "${SAMPLE:-0}" = 1 ]; then sleep 1; sample_waits $((SECS - 2)); fi
    wait "${wrk_pids[@]}"
    [ -n "$SAMPLER_PID" ] && wait "$SAMPLER_PID"
    cpu_end "${PORT_PIDS[@]}"
    local rate=0 p50=0 p99=0 bad=0 gen=0 commits=0 recs=0 mean=0 line created requests errors
    local p50s=() p99s=() lat=""
    for i in "${!ports[@]}"; do
        line=$(grep '^HF_WRK' "$WORK/wrk.$i")
        after[i]=$(snap "${ports[i]}")
        requests=$(kv "$line" requests)
        errors=$(($(kv "$line" non2xx) + $(kv "$line" connect_errors) + $(kv "$line" read_errors) + $(kv "$line" write_errors) + $(kv "$line" timeouts)))
        created=$(($(cut -d' ' -f1 <<<"${after[i]}") - $(cut -d' ' -f1 <<<"${before[i]}")))
        # wrk counts completed requests; the server may have answered a few
        # more whose replies were in flight when wrk stopped.
        if [ -z "$requests" ] || [ "$errors" != 0 ] || { [ "$lua" != healthz ] && [ "$created" -lt "$requests" ]; }; then
            bad=$((bad + 1))
        fi
        rate=$(awk -v a="$rate" -v b="$(kv "$line" rps)" 'BEGIN { print a + b }')
        p50s+=("$(kv "$line" p50_us)")
        p99s+=("$(kv "$line" p99_us)")
        gen=$(awk -v a="$gen" -v g="$(cat "$WORK/gen.$i")" 'BEGIN { split(g, x, " "); print a + x[1] + x[2] }')
        if [ "$lua" != healthz ]; then
            journal_delta "${before[i]}" "${after[i]}" "$bnd"
            commits=$((commits + COMMITS))
            recs=$(awk -v a="$recs" -v c="$COMMITS" -v r="$RECS_PER_COMMIT" 'BEGIN { print a + (r == "-" ? 0 : c * r) }')
            mean=$(awk -v a="$mean" -v c="$COMMITS" -v m="$COMMIT_MEAN_MS" 'BEGIN { print a + (m == "-" ? 0 : c * m) }')
            lat="$lat${lat:+, }p50<=$COMMIT_P50_MS p99<=$COMMIT_P99_MS"
        fi
    done
    # Latency: the slowest shop's p50 and p99.
    p50=$(printf '%s\n' "${p50s[@]}" | sort -n | tail -1)
    p99=$(printf '%s\n' "${p99s[@]}" | sort -n | tail -1)
    GEN_PCT=$(awk -v g="$gen" -v w="$WALL_S" 'BEGIN { printf "%.0f", g / w * 100 }')
    RATE=$(awk -v r="$rate" 'BEGIN { printf "%.0f", r }')
    if [ "$commits" -gt 0 ]; then
        RECS_PER_COMMIT=$(awk -v r="$recs" -v c="$commits" 'BEGIN { printf "%.1f", r / c }')
        COMMIT_MEAN_MS=$(awk -v m="$mean" -v c="$commits" 'BEGIN { printf "%.2f", m / c }')
    else
        RECS_PER_COMMIT=- COMMIT_MEAN_MS=-
    fi
    if [ "$bad" = 0 ]; then CHECK=ok; else CHECK="BAD ($bad of $n)"; fi
    echo "   $scenario: $RATE $([ "$lua" = healthz ] && echo req/s || echo holds/s), p50 $(ms "$p50") ms, p99 $(ms "$p99") ms ($CHECK)"
    echo "      CPU: servers $SRV_PCT%, PostgreSQL $PG_PCT%, wrk $GEN_PCT% of a core; machine $MACHINE_PCT% busy"
    [ "$commits" -gt 0 ] && echo "      journal: $commits group commits, $RECS_PER_COMMIT records each, mean $COMMIT_MEAN_MS ms (${lat//<=/ <= } ms)"
    [ -n "$SAMPLER_PID" ] && echo "      the journal's PostgreSQL session: $(paste -sd, "$WORK/waits" | sed 's/,/, /g')"
    [ "$lua" = healthz ] && RECS_PER_COMMIT=- COMMIT_MEAN_MS=-
    row "$scenario" "$n" "$((conns * n))" "$RATE" "$p50" "$p99" "$CHECK"
    echo "      ($SECONDS s)"
    sleep 1
}

# one SCENARIO NAME [PG_URL SHOP] [CONNS] [healthz]: a fresh server, one
# load, stopped.
one() {
    local scenario=$1 name=$2 url=${3:-} shop=${4:-} conns=${5:-$CONNS} what=${6:-holds}
    start_server "$name" "$url" "$shop"
    PORT_PIDS=("$SERVER_PID")
    load "$scenario" "$conns" holds "$PORT"
    ONE_RATE=$RATE
    if [ -n "$url" ] && [ "$RECS_PER_COMMIT" != - ]; then
        # The rows of this run, for pg_alone: records each, bytes a record.
        PG_ROW_RECORDS=$RECS_PER_COMMIT
        PG_RECORD_BYTES=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '
            /^holdfast_journal_bytes_total/ { b = $2 } /^holdfast_journal_records_total/ { r = $2 }
            END { printf "%.0f", (r > 0 ? b / r : 0) }')
    fi
    if [ "$what" = healthz ]; then
        load "GET /healthz, the same server" "$conns" healthz "$PORT"
        ONE_HEALTHZ=$RATE
    fi
    stop_servers
}

# ------------------------------------------------------------------ PostgreSQL alone

# pgbench_run SCENARIO CLIENTS SCRIPT [pgbench options...]: pgbench on the
# primary for SECS, each transaction one commit; sets RATE (commits/s) and
# CHECK (ok when pgbench saw no failure), and prints a line. p50/p99 come
# from its per-transaction log.
pgbench_run() {
    local scenario=$1 clients=$2 script=$3 out rc tps failed p50 p99
    shift 3
    rm -f "$WORK"/pgb.*
    cpu_start
    out=$(/usr/bin/time -f '%U %S' -o "$WORK/gen.pgb" "$PGH_BIN/pgbench" -n -h 127.0.0.1 \
        -p "$PG_PRIMARY_PORT" -U "$PGH_DB_USER" -c "$clients" -j "$WRK_THREADS" -T "$SECS" \
        -M prepared -l --log-prefix="$WORK/pgb" -f "$script" "$@" "$PGH_DB" 2>&1)
    rc=$?
    cpu_end
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    read -r p50 p99 < <(cat "$WORK"/pgb.* 2>/dev/null | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 }
        END { if (NR == 0) { print "", ""; exit } print v[int((NR - 1) * 0.5) + 1], v[int((NR - 1) * 0.99) + 1] }')
    RATE=$(awk -v t="${tps:-0}" 'BEGIN { printf "%.0f", t }')
    GEN_PCT=$(awk -v g="$(cat "$WORK/gen.pgb")" -v w="$WALL_S" 'BEGIN { split(g, x, " "); printf "%.0f", (x[1] + x[2]) / w * 100 }')
    CHECK=ok
    if [ "$rc" != 0 ] || [ -z "$tps" ] || [ "${failed:-0}" != 0 ]; then
        CHECK="BAD (pgbench exit $rc, failed ${failed:-?})"
        grep -iE 'error|abort' <<<"$out" | sort | uniq -c | head -3 | sed 's/^/      pgbench said: /'
    fi
    echo "   $scenario: $RATE commits/s, p50 $(ms "$p50") ms, p99 $(ms "$p99") ms ($CHECK)"
    echo "      CPU: PostgreSQL $PG_PCT%, pgbench $GEN_PCT% of a core; machine $MACHINE_PCT% busy"
    RECS_PER_COMMIT=- COMMIT_MEAN_MS=- SRV_PCT=0
    row "$scenario" - "$clients" "$RATE" "$p50" "$p99" "$CHECK"
    echo "      ($SECONDS s)"
}

# pg_alone: what the same PostgreSQL does without holdfast: the journal's
# own appends (one fenced row per commit, as large as the last PostgreSQL
# run's rows were on average), then the usual PostgreSQL-backed shop's
# hold (bench/peer-pg-hold.sql, make bench's PostgreSQL peer), each from
# pgbench. Sets ALONE_JOURNAL (rows/s at 4 clients), ALONE_RECORDS (the
# records per row) and ALONE_HOLDS (holds/s at 32 clients).
pg_alone() {
    local recs bytes
    recs=$(awk -v r="${PG_ROW_RECORDS:-1}" 'BEGIN { r = int(r + 0.5); print (r < 1 ? 1 : r) }')
    bytes=$((recs * ${PG_RECORD_BYTES:-200}))
    pgh_sql "$PG_PRIMARY_PORT" "$PGH_DB" "$(cat "$LUA/peer-pg-journal-schema.sql" "$LUA/peer-pg-schema.sql")
        INSERT INTO skus (sku, stock) VALUES ('hot', $STOCK)" >/dev/null || exit 1
    pgbench_run "PostgreSQL alone: journal rows of $recs records ($bytes bytes), 4 clients" 4 \
        "$LUA/peer-pg-journal.sql" -D records="$recs" -D bytes="$bytes"
    ALONE_JOURNAL=$RATE ALONE_RECORDS=$recs
    pgbench_run "PostgreSQL alone: a shop's hold transaction, $CONNS clients" $CONNS \
        "$LUA/peer-pg-hold.sql" -D sku=hot -D qty=1 -D ttl_s=$((TTL_MS / 1000))
    ALONE_HOLDS=$RATE
}

# ------------------------------------------------------------------ machine


run_header "holdfast with the journal in PostgreSQL" \
    "make bench-cluster  (bench/cluster.sh; HF_CLUSTER_SECONDS=$SECS HF_CLUSTER_ROUNDS=$ROUNDS HF_CLUSTER_SHOPS_MAX=$SHOPS_MAX)" "$ROOT"
echo "disk:     $(df -T "$WORK" | awk 'NR == 2 {print $1 ", " $2}') (holdfast's data and PostgreSQL's, primary and standby); 4 KiB write+fdatasync (dd oflag=dsync): $(fsync_latency_us "$WORK") us"
echo "tools:    $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $("$PGH_BIN/postgres" --version)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (load average at start; wrk, the servers and PostgreSQL share the CPUs)"
echo "each run: wrk, $SECS s, durable holds on one hot sku, a new buyer each (bench/holds.lua, $BUYERS buyers), default policy"
echo

echo "== PostgreSQL 15: a primary and a synchronous standby on 127.0.0.1 (tests/cluster/pg.sh)"
PG_UP=1
pgh_start "$PG_DIR" --standby >/dev/null || exit 1
pgh_load "$PG_DIR" || exit 1
echo "   primary :$PG_PRIMARY_PORT, standby :$PG_STANDBY_PORT; synchronous_commit on, each commit flushed on both"
echo

# ------------------------------------------------------------------ 1. A/B

echo "== 1. one shop, $CONNS connections: SQLite journal and PostgreSQL journal, alternating"
SUM_A=0 SUM_B=0 SUM_Z=0
RATIOS=()
for r in $(seq "$ROUNDS"); do
    one "round $r: SQLite journal" "sqlite-$r"
    a=$ONE_RATE
    one "round $r: PostgreSQL journal" "pg-$r" "$PG_URL" "ab-$r" $CONNS healthz
    b=$ONE_RATE z=$ONE_HEALTHZ
    SUM_A=$((SUM_A + a)) SUM_B=$((SUM_B + b)) SUM_Z=$((SUM_Z + z))
    RATIOS+=("round $r: PostgreSQL/SQLite $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }'), PostgreSQL/healthz $(awk -v z="$z" -v b="$b" 'BEGIN { printf "%.3f", (z > 0 ? b / z : 0) }')")
done
echo

# ------------------------------------------------------------------ 2. bounds

echo "== 2. what bounds the PostgreSQL journal (where its session waits: sampled every 20 ms)"
SAMPLE=1
one "PostgreSQL journal, sampled" pg-sampled "$PG_URL" sampled
one "PostgreSQL journal, $CONNS_WIDE connections" pg-wide "$PG_URL" wide $CONNS_WIDE
WIDE=$ONE_RATE
# Not settings to run with: what the standby's flush, then its whole round
# trip, cost each commit. ALTER DATABASE applies to the servers' new sessions.
declare -A SYNC
for mode in remote_write local; do
    pgh_sql "$PG_PRIMARY_PORT" postgres "ALTER DATABASE $PGH_DB SET synchronous_commit = $mode" >/dev/null || exit 1
    one "PostgreSQL journal, synchronous_commit $mode" "pg-${mode//_/-}" "$PG_URL" "sc-${mode//_/-}"
    SYNC[$mode]=$ONE_RATE
    pgh_sql "$PG_PRIMARY_PORT" postgres "ALTER DATABASE $PGH_DB RESET synchronous_commit" >/dev/null || exit 1
done
SAMPLE=0
pg_alone
echo

# ------------------------------------------------------------------ 3. shops

echo "== 3. many shops: a holdfast process per shop, same PostgreSQL"
PORTS=()
ALL_PIDS=()
for s in $(seq "$SHOPS_MAX"); do
    start_server "shop-$s" "$PG_URL" "s$s"
    PORTS+=("$PORT")
    ALL_PIDS+=("$SERVER_PID")
done
echo "   $SHOPS_MAX servers started (ports ${PORTS[*]}); those not loaded in a run sit idle"
declare -A SPLIT EACH
for spread in split each; do
    k=1
    while [ "$k" -le "$SHOPS_MAX" ]; do
        PORT_PIDS=("${ALL_PIDS[@]:0:k}")
        if [ $spread = split ]; then
            load "$k shop(s), $CONNS connections split" $((CONNS / k)) holds "${PORTS[@]:0:k}"
            SPLIT[$k]=$RATE
        else
            load "$k shop(s), $CONNS connections each" $CONNS holds "${PORTS[@]:0:k}"
            EACH[$k]=$RATE
        fi
        k=$((k * 2))
    done
done
echo

# ------------------------------------------------------------------ 4. nodes

# Two nodes against one, for the same shops. A node is a machine of its own;
# here each is a CPU cap (bench/cpucap.sh) of NODE_CPU % of a core over its
# shops' processes, so that the holdfast side is what runs out, as it does
# when shops outgrow one machine. PostgreSQL and wrk stay uncapped and
# shared, as one database serves every node.
echo "== 4. two nodes against one: $NODE_SHOPS shops, $CONNS connections each, a node capped at $NODE_CPU% of a core"
declare -A NODES1 NODES2
if [ "$SHOPS_MAX" -lt 2 ]; then
    echo "   skipped: needs HF_CLUSTER_SHOPS_MAX >= 2"
elif ! cpucap_available; then
    echo "   skipped: CPU caps need root and a writable cgroup filesystem (bench/cpucap.sh)"
else
    CAPS=1
    cpucap_make node-a "$NODE_CPU" && cpucap_make node-b "$NODE_CPU" || exit 1
    half=$((NODE_SHOPS / 2))
    PORT_PIDS=("${ALL_PIDS[@]:0:NODE_SHOPS}")
    for r in $(seq "$ROUNDS"); do
        cpucap_put node-a "${PORT_PIDS[@]}" || exit 1
        load "round $r: one node, $NODE_SHOPS shops" $CONNS holds "${PORTS[@]:0:NODE_SHOPS}"
        NODES1[$r]=$RATE
        cpucap_put node-b "${PORT_PIDS[@]:half}" || exit 1
        load "round $r: two nodes, $half + $((NODE_SHOPS - half)) shops" $CONNS holds "${PORTS[@]:0:NODE_SHOPS}"
        NODES2[$r]=$RATE
    done
    cpucap_put "" "${PORT_PIDS[@]}"
fi
stop_servers
echo

# ------------------------------------------------------------------ summary

echo "== summary (the run took ${SECONDS} s)"
echo "   holds/s: all shops together (GET /healthz: requests/s). p50/p99: the slowest shop's."
echo "   rec/commit, commit ms: the journal's group commits in the run (records each, mean latency)."
echo "   CPU in % of one core (2 in all): srv the holdfast servers, pg PostgreSQL (primary and"
echo "   standby), wrk the load; machine: the whole machine's busy %, other work included."
{
    printf 'scenario\tshops\tconns\tholds/s\tp50 ms\tp99 ms\trec/commit\tcommit ms\tsrv %%\tpg %%\twrk %%\tmachine %%\treplies\n'
    cat "$SUMMARY"
} | column -t -s $'\t'
echo
for l in "${RATIOS[@]}"; do echo "$l"; done
echo "mean of $ROUNDS rounds: SQLite $((SUM_A / ROUNDS)) holds/s, PostgreSQL $((SUM_B / ROUNDS)) holds/s, healthz $((SUM_Z / ROUNDS)) req/s;" \
    "PostgreSQL/SQLite $(awk -v a="$SUM_A" -v b="$SUM_B" 'BEGIN { printf "%.3f", b / a }'), PostgreSQL/healthz $(awk -v z="$SUM_Z" -v b="$SUM_B" 'BEGIN { printf "%.3f", b / z }')"
echo "PostgreSQL alone (pgbench): the journal's rows of $ALONE_RECORDS records at 4 clients: $ALONE_JOURNAL commits/s (so $((ALONE_JOURNAL * ALONE_RECORDS)) records/s at most at that size); a shop's hold transaction at $CONNS clients: $ALONE_HOLDS holds/s, so holdfast with the journal there / it: $(awk -v b="$SUM_B" -v n="$ROUNDS" -v a="$ALONE_HOLDS" 'BEGIN { printf "%.2f", (a > 0 ? b / n / a : 0) }')"
echo "PostgreSQL journal at $CONNS_WIDE connections: $WIDE holds/s; synchronous_commit remote_write (the standby writes, flushes later): ${SYNC[remote_write]} holds/s; local (no wait for the standby): ${SYNC[local]} holds/s"
k=1
line=""
while [ "$k" -le "$SHOPS_MAX" ]; do
    line="$line${line:+; }$k: ${SPLIT[$k]} / ${EACH[$k]} ($(awk -v a="${EACH[$k]}" -v b="${EACH[1]}" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'))"
    k=$((k * 2))
done
echo "shops: holds/s with $CONNS connections split / $CONNS each (each vs one shop): $line"
if [ "${#NODES1[@]}" -gt 0 ]; then
    line=""
    for r in $(seq "$ROUNDS"); do
        line="$line${line:+; }round $r: ${NODES1[$r]} / ${NODES2[$r]} ($(awk -v a="${NODES2[$r]}" -v b="${NODES1[$r]}" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'))"
    done
    echo "nodes: holds/s of $NODE_SHOPS shops on one node / on two, each node capped at $NODE_CPU% of a core: $line"
fi
echo "target >= 20000 holds/s per shop with the PostgreSQL journal at $CONNS connections: $(awk -v b="$SUM_B" -v n="$ROUNDS" 'BEGIN { print (b / n >= 20000 ? "met" : "missed") }') ($((SUM_B / ROUNDS))/s)"
echo "results: $OUT"
