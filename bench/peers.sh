# shellcheck shell=bash
# shellcheck disable=SC2034 # MEASURE_PID, SERVER_TREE: read by run.sh
# bench/peers.sh - the `peers` group of bench/run.sh, which sources it: the
# durable hot-sku hold done by Redis 7 (a Lua script) and by PostgreSQL 15
# (one transaction), each a throwaway server on a free loopback port with its
# own directory, driven at 32 connections for HF_BENCH_SECONDS by its own
# load generator (redis-benchmark, pgbench), between two runs of holdfast's. docs/BENCHMARKS.md
# says what each does and where the comparison is fair and where it is not.
#
# Uses run.sh's WORK, ROOT, LUA, SECS, STOCK, TTL_MS, MEASURE_PID (the
# server measure_start/measure_end measure) and its gen and row helpers.

PEER_CONNS=32
PEER_SKU=hot
PEER_PORT_MIN=20000 # below Linux's ephemeral range (32768 up), so no client
PEER_PORT_SPAN=12000 # socket of the load generators can be sitting on it
PEER_START_TRIES=3
PEER_START_WAIT_S=30
PEER_STOP_WAIT_S=30
PG_BIN=/usr/lib/postgresql/15/bin
PG_USER=nobody # PostgreSQL refuses to run as root
REDIS_CALIBRATE_REQUESTS=20000
REDIS_REQUESTS_MIN=10000

# port_in_use PORT: whether some socket listens on PORT (any address).
port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h="$hex" '$4 == "0A" { split($2, a, ":"); if (a[2] == h) f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port: a port nothing listens on now. Another program may still take it
# before the server binds it; the callers retry with another.
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((PEER_PORT_MIN + RANDOM % PEER_PORT_SPAN))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# stop_pid PID SIGNAL: sends SIGNAL, waits up to PEER_STOP_WAIT_S for the
# process to go, then kills it.
stop_pid() {
    local pid=$1 sig=$2
    kill -"$sig" "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for _ in $(seq $((PEER_STOP_WAIT_S * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

ratio() { # ratio A B [SUFFIX]: A / B to two significant figures, or - without both
    awk -v a="$1" -v b="$2" -v x="${3:-}" 'BEGIN {
        if (a == "" || b == "" || a + 0 <= 0 || b + 0 <= 0) { print "-"; exit }
        r = a / b; printf(r >= 10 ? "%.0f%s\n" : (r >= 1 ? "%.1f%s\n" : "%.2f%s\n"), r, x) }'
}

# ------------------------------------------------------------------ Redis

REDIS_PORT=
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

redis_stop() {
    [ -n "$REDIS_PID" ] || return 0
    stop_pid "$REDIS_PID" TERM
    REDIS_PID=
}

# redis_start DIR: a fresh redis-server on a free loopback port, with the
# append-only file fsynced before each reply; sets REDIS_PID and REDIS_PORT.
redis_start() {
    local dir=$1
    for _ in $(seq $PEER_START_TRIES); do
        REDIS_PORT=$(free_port) || return 1
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
            --appendonly yes --appendfsync always --save '' --daemonize no \
            --logfile "$dir/redis.log" &
        REDIS_PID=$!
        for _ in $(seq $((PEER_START_WAIT_S * 10))); do
            kill -0 "$REDIS_PID" 2>/dev/null || break
            [ "$(rcli ping 2>/dev/null)" = PONG ] && return 0
            sleep 0.1
        done
        redis_stop
    done
    echo "   redis-server did not start:" >&2
    tail -5 "$dir/redis.log" >&2
    return 1
}

# redis_bench [gen] REQUESTS SHA: redis-benchmark's CSV line for REQUESTS
# holds (with gen: timed as the load generator). Each names a random
# customer of 10,000, like bench/holds.lua.
redis_bench() {
    local timed=()
    [ "$1" = gen ] && { timed=(gen); shift; }
    "${timed[@]}" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c $PEER_CONNS -n "$1" -r 10000 --csv \
        EVALSHA "$2" 1 "sku:$PEER_SKU" 1 c-__rand_int__ $TTL_MS | tail -1
}

redis_field() { rcli hget "sku:$PEER_SKU" held; }

# redis_failed_calls: EVALSHA calls that returned an error, from INFO.
redis_failed_calls() {
    rcli info commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:.*failed_calls=\([0-9]*\).*/\1/p'
}

peer_redis() {
    local b
    for b in redis-server redis-cli redis-benchmark; do
        if ! command -v $b >/dev/null; then
            echo "   Redis+Lua: skipped, $b is not installed (scripts/deps.sh bench installs redis-server)"
            echo
            return
        fi
    done
    local dir=$WORK/peers-redis
    mkdir -p "$dir"
    redis_start "$dir" || { echo "   Redis+Lua: skipped, the server did not start"; echo; return; }
    echo "   redis pid $REDIS_PID on 127.0.0.1:$REDIS_PORT: $(redis-server --version | cut -d' ' -f1-3), appendonly yes, appendfsync always, save off"
    local sha probe
    rcli hset "sku:$PEER_SKU" stock $STOCK held 0 sold 0 >/dev/null
    sha=$(rcli script load "$(cat "$LUA/peer-redis-hold.lua")")
    probe=$(rcli evalsha "$sha" 1 "sku:$PEER_SKU" 1 c-probe $TTL_MS)
    if [ "$probe" != 1 ]; then
        echo "   Redis+Lua: BAD, the hold script's first hold returned '$probe', not hold 1"
        redis_stop
        echo
        return
    fi
    # redis-benchmark runs a number of requests, not a time: a short run
    # (which also warms up) sets how many make HF_BENCH_SECONDS.
    local cal rate n line before after failed0 failed created check
    cal=$(redis_bench $REDIS_CALIBRATE_REQUESTS "$sha")
    rate=$(cut -d, -f2 <<<"$cal" | tr -d '"')
    n=$(awk -v r="$rate" -v s="$SECS" -v m=$REDIS_REQUESTS_MIN 'BEGIN { n = int(r * s); print n < m ? m : n }')
    before=$(redis_field)
    failed0=$(redis_failed_calls)
    MEASURE_PID=$REDIS_PID
    measure_start
    line=$(redis_bench gen "$n" "$sha")
    measure_end "$n"
    MEASURE_PID=
    after=$(redis_field)
    failed=$(($(redis_failed_calls) - failed0))
    created=$((after - before))
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    local rps p50 p99
    rps=$(cut -d, -f2 <<<"$line" | tr -d '"' | awk '{ printf "%.0f", $1 }')
    p50=$(cut -d, -f5 <<<"$line" | tr -d '"')
    p99=$(cut -d, -f7 <<<"$line" | tr -d '"')
    # With a stock no run can exhaust, every call is a grant: held must have
    # grown by exactly the number of calls, and the hold ids with it.
    if [ "$failed" = 0 ] && [ "$created" = "$n" ] &&
        [ "$(rcli get holds:next)" = "$after" ] && [ "$(rcli zcard holds:expiry)" = "$after" ]; then
        check="ok: $created holds, held = holds = $after"
        REDIS_HOLDS=$rps
    else
        check="BAD: $n calls, failed=$failed, held grew by $created"
    fi
    echo "   redis-benchmark EVALSHA hold c=$PEER_CONNS: $rps holds/s, p50 $p50 ms, p99 $p99 ms, $n requests ($check)"
    echo "      server CPU ${SRV_US_PER_REQ} us/request (${SRV_CPU_PCT}% of a core), load generator ${GEN_CPU_PCT}%"
    row "holds, hot sku: Redis 7 + Lua" redis-benchmark $PEER_CONNS "aof always" 1 "$rps" \
        "$(awk -v m="$p50" 'BEGIN { print m * 1000 }')" "$(awk -v m="$p99" 'BEGIN { print m * 1000 }')" "$check"
    echo "   redis RSS at the end: $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' /proc/"$REDIS_PID"/status), append-only files $(du -sh "$dir/appendonlydir" 2>/dev/null | cut -f1)"
    redis_stop
    echo "   stopped"
    echo
}

# ------------------------------------------------------------------ PostgreSQL

PG_PORT=
PG_AS=() # the command prefix that runs a program as PG_USER (empty if not root)

# as_pg [gen] COMMAND...: COMMAND as PG_USER in PG_DIR (with gen: timed as
# the load generator).
as_pg() {
    local timed=()
    [ "$1" = gen ] && { timed=(gen); shift; }
    (cd "$PG_DIR" && HOME=$PG_DIR "${timed[@]}" "${PG_AS[@]}" "$@")
}
pg_sql() { # pg_sql SQL: runs SQL, prints the rows unaligned
    as_pg "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U bench -d postgres -c "$1"
}

pg_stop() {
    [ -n "$PG_PID" ] || return 0
    stop_pid "$PG_PID" INT # a fast shutdown: ends sessions, checkpoints
    PG_PID=
}

# pg_dir: a directory PG_USER owns, on the project's disk (build/) if
# PG_USER can reach it there, else under /var/tmp. Sets PG_DIR.
pg_dir() {
    PG_DIR=$(mktemp -d "$ROOT/build/bench-pg.XXXXXX") || return 1
    [ ${#PG_AS[@]} -eq 0 ] && return 0
    chown "$PG_USER": "$PG_DIR"
    if ! "${PG_AS[@]}" test -w "$PG_DIR" 2>/dev/null; then
        rm -rf "$PG_DIR"
        PG_DIR=$(mktemp -d /var/tmp/holdfast-bench-pg.XXXXXX) || return 1
        chown "$PG_USER": "$PG_DIR"
    fi
}

# pg_start: initdb and a postgres on a free loopback port; sets PG_PID and
# PG_PORT. Durable as configured by default, said again explicitly.
pg_start() {
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U bench -A trust -E UTF8 --no-instructions \
        >"$PG_DIR/initdb.log" 2>&1 || { tail -5 "$PG_DIR/initdb.log" >&2; return 1; }
    cat >>"$PG_DIR/data/postgresql.conf" <<EOF

# bench/run.sh's peers group: loopback only, durable commits.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 64
EOF
    for _ in $(seq $PEER_START_TRIES); do
        PG_PORT=$(free_port) || return 1
        # setpriv execs postgres itself, so PG_PID is the postmaster's.
        (cd "$PG_DIR" && exec "${PG_AS[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -c port="$PG_PORT" \
            >"$PG_DIR/postgres.log" 2>&1) &
        PG_PID=$!
        for _ in $(seq $((PEER_START_WAIT_S * 10))); do
            kill -0 "$PG_PID" 2>/dev/null || break
            as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && return 0
            sleep 0.1
        done
        pg_stop
    done
    echo "   postgres did not start:" >&2
    tail -5 "$PG_DIR/postgres.log" >&2
    return 1
}

# pg_settle: waits (bounded) until the postmaster has reaped the backends of
# the last client, so their CPU is in its cutime.
pg_settle() {
    local want=$1
    for _ in $(seq 50); do
        [ "$(children "$PG_PID" | wc -l)" -le "$want" ] && return
        sleep 0.1
    done
}

# percentiles FILE...: "p50 p99" in us of pgbench's per-transaction logs
# (the third field is the latency in us).
percentiles() {
    cat "$@" | awk '{ print $3 }' | sort -n | awk '{ v[NR] = $1 }
        END { if (NR == 0) { print "- -"; exit }
              print v[int((NR - 1) * 0.5) + 1], v[int((NR - 1) * 0.99) + 1] }'
}

peer_pg() {
    local b
    for b in initdb postgres pgbench psql pg_isready; do
        if [ ! -x "$PG_BIN/$b" ]; then
            echo "   PostgreSQL: skipped, $PG_BIN/$b is missing (scripts/deps.sh bench installs postgresql-15)"
            echo
            return
        fi
    done
    PG_AS=()
    if [ "$(id -u)" = 0 ]; then
        if ! id -u "$PG_USER" >/dev/null 2>&1 || ! command -v setpriv >/dev/null; then
            echo "   PostgreSQL: skipped, it cannot run as root and there is no user $PG_USER (or no setpriv) to run it as"
            echo
            return
        fi
        PG_AS=(setpriv --reuid="$(id -u $PG_USER)" --regid="$(id -g $PG_USER)" --clear-groups --)
    fi
    pg_dir || { echo "   PostgreSQL: skipped, no directory for it"; echo; return; }
    if ! pg_start; then
        echo "   PostgreSQL: skipped, the server did not start"
        echo
        return
    fi
    echo "   postgres pid $PG_PID on 127.0.0.1:$PG_PORT: $("$PG_BIN/postgres" --version), fsync on, synchronous_commit on${PG_AS[0]:+, as $PG_USER}, data in $PG_DIR"
    cp "$LUA/peer-pg-schema.sql" "$LUA/peer-pg-hold.sql" "$PG_DIR/"
    chmod a+r "$PG_DIR"/peer-pg-*.sql
    if ! as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U bench -d postgres \
        -f "$PG_DIR/peer-pg-schema.sql" >"$PG_DIR/schema.log" 2>&1 ||
        ! pg_sql "INSERT INTO skus (sku, stock) VALUES ('$PEER_SKU', $STOCK)" >/dev/null; then
        echo "   PostgreSQL: BAD, the schema did not load:"
        sed 's/^/      /' "$PG_DIR/schema.log"
        pg_stop
        echo
        return
    fi
    local aux out rc tx failed held holds tps p50 p99 check
    aux=$(children "$PG_PID" | wc -l) # the checkpointer, the WAL writer and so on
    MEASURE_PID=$PG_PID
    SERVER_TREE=1
    measure_start
    out=$(as_pg gen "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$PG_PORT" -U bench -c $PEER_CONNS -j 2 \
        -T "$SECS" -M prepared -D sku=$PEER_SKU -D qty=1 -D ttl_s=$((TTL_MS / 1000)) \
        -l --log-prefix="$PG_DIR/tx" -f "$PG_DIR/peer-pg-hold.sql" postgres 2>&1)
    rc=$?
    pg_settle "$aux"
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
    measure_end "${tx:-0}"
    MEASURE_PID=
    SERVER_TREE=0
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
    read -r p50 p99 < <(percentiles "$PG_DIR"/tx.*)
    held=$(pg_sql "SELECT held FROM skus WHERE sku = '$PEER_SKU'")
    holds=$(pg_sql "SELECT count(*) FROM holds")
    # With a stock no run can exhaust, every transaction is a grant: held and
    # the hold rows must both equal the transactions pgbench saw commit.
    if [ "$rc" = 0 ] && [ -n "$tx" ] && [ "${failed:-0}" = 0 ] && [ "$held" = "$tx" ] && [ "$holds" = "$tx" ]; then
        check="ok: $tx holds, held = rows = $held"
        PG_HOLDS=$(awk -v t="$tps" 'BEGIN { printf "%.0f", t }')
    else
        check="BAD: pgbench exit $rc, $tx transactions, failed=${failed:-?}, held=$held, hold rows=$holds"
        grep -iE 'error|abort' <<<"$out" | sort | uniq -c | head -5 | sed 's/^/      pgbench said: /'
    fi
    echo "   pgbench hold transaction c=$PEER_CONNS -j 2: $(awk -v t="$tps" 'BEGIN { printf "%.0f", t }') holds/s, p50 $(ms "$p50") ms, p99 $(ms "$p99") ms ($check)"
    echo "      server CPU ${SRV_US_PER_REQ} us/request (${SRV_CPU_PCT}% of a core, all its processes), load generator ${GEN_CPU_PCT}%"
    row "holds, hot sku: PostgreSQL 15" pgbench $PEER_CONNS "sync commit" "-" \
        "$(awk -v t="$tps" 'BEGIN { printf "%.0f", t }')" "$p50" "$p99" "$check"
    pg_stop
    echo "   stopped"
    echo
}

# ------------------------------------------------------------------ summary

# peers_summary BEFORE AFTER HEALTHZ: holdfast's durable hot-sku holds/s at
# 32 connections, just before and just after the peers (empty if a run's
# replies were not all good), their mean over each peer's, and over its own
# GET /healthz at 32 connections.
peers_summary() {
    local before=$1 after=$2 hz=$3 hf=
    [ -n "$before" ] && [ -n "$after" ] &&
        hf=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.0f", (a + b) / 2 }')
    echo "   holdfast durable hot-sku holds at c=32: ${hf:--}/s (before the peers ${before:--}/s, after ${after:--}/s); Redis+Lua: ${REDIS_HOLDS:--}/s; PostgreSQL: ${PG_HOLDS:--}/s; holdfast GET /healthz c=32: ${hz:--}/s"
    echo "   holdfast / redis-lua: $(ratio "$hf" "${REDIS_HOLDS:-}" x), / postgresql: $(ratio "$hf" "${PG_HOLDS:-}" x), / healthz: $(ratio "$hf" "$hz")"
    echo
}
