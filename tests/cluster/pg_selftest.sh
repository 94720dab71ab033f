#!/usr/bin/env bash
# tests/cluster/pg_selftest.sh [DIR] - the PostgreSQL harness (pg.sh) tried
# on its own: a primary and its synchronous standby, a writer inserting rows
# through PG_URL while the primary is killed and the standby takes over,
# twice; after each failover every row whose commit was acknowledged must be
# there, read through the same URL, and the roles must have swapped. Then
# `stop` must leave no process of the cluster running. Exits 77 (skipped)
# only when PostgreSQL 15 is not installed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pg=$here/pg.sh
# shellcheck source=tests/cluster/pg.sh
. "$pg"

SKIP=77
FAILOVERS=2
ROWS_BEFORE=20     # acknowledged before the primary is killed
ROWS_AFTER=10      # acknowledged by the new primary before the check
ROWS_MAX=5000      # the writer's bound, far above what a run needs
ACK_WAIT_S=30

if ! pgh_available; then
    echo "SKIP: PostgreSQL 15 is not installed in $PGH_BIN (scripts/deps.sh test installs postgresql-15)"
    exit $SKIP
fi

made_dir=''
if [ $# -ge 1 ]; then
    dir=$1
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-pg.XXXXXX")
    made_dir=$dir
fi
writer=''

cleanup() {
    if [ -n "$writer" ]; then
        kill "$writer" 2>/dev/null
        wait "$writer" 2>/dev/null
    fi
    "$pg" destroy "$dir" >/dev/null || echo "cleanup: the cluster in $dir did not stop cleanly" >&2
    [ -z "$made_dir" ] || rm -rf "$made_dir"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

now() { echo "$EPOCHREALTIME"; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

# acked: how many inserts the writer has seen committed.
acked() { if [ -f "$dir/acked" ]; then wc -l <"$dir/acked"; else echo 0; fi; }

# wait_acked N: waits (bounded) until the writer has N acknowledged rows.
wait_acked() {
    local deadline=$((SECONDS + ACK_WAIT_S))
    while [ "$(acked)" -lt "$1" ]; do
        [ $SECONDS -lt $deadline ] || fail "the writer had $(acked) rows acknowledged after ${ACK_WAIT_S}s, not $1; $(tail -3 "$dir/writer.err")"
        sleep 0.05
    done
}

# writer FIRST: inserts FIRST, FIRST+1, ... through PG_URL, one connection
# each, until told to stop; the ids whose commit returned go to DIR/acked.
# Failures (no primary, a connection cut by the kill) are expected while
# the roles change; their rows may or may not exist.
writer_start() {
    local first=$1
    rm -f "$dir/stop-writer"
    (
        for ((id = first; id < first + ROWS_MAX; id++)); do
            [ -e "$dir/stop-writer" ] && break
            if timeout "$PGH_PSQL_WAIT_S" "$PGH_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG_URL" \
                -c "INSERT INTO acked_rows (id) VALUES ($id)" 2>>"$dir/writer.err"; then
                echo "$id" >>"$dir/acked"
            fi
        done
    ) &
    writer=$!
}

writer_stop() {
    touch "$dir/stop-writer"
    wait "$writer" 2>/dev/null
    writer=''
}

# check_rows: every acknowledged id is in the table, read through PG_URL.
check_rows() {
    local present missing
    present=$("$pg" psql "$dir" "SELECT id FROM acked_rows ORDER BY id") || fail "the rows could not be read through PG_URL"
    missing=$(comm -23 <(sort "$dir/acked") <(sort <<<"$present"))
    [ -z "$missing" ] || fail "acknowledged rows are missing after the failover: $(tr '\n' ' ' <<<"$missing" | head -c 200)"
    echo "   all $(acked) acknowledged rows are there ($(wc -l <<<"$present") rows in the table)"
}

# role PORT: primary or standby, as the node on PORT says.
role() {
    case $(pgh_sql "$1" postgres "SELECT pg_is_in_recovery()") in
        f) echo primary ;;
        t) echo standby ;;
        *) echo unreachable ;;
    esac
}

mkdir -p "$dir"
rm -f "$dir/acked" "$dir/writer.err"

t=$(now)
"$pg" start "$dir" --standby >/dev/null || fail "pg.sh start --standby failed"
echo "start --standby: $(took "$t")"
pgh_load "$dir" || fail "no env after start"
url=$PG_URL
[ "$(role "$PG_PRIMARY_PORT")" = primary ] || fail "the node on PG_PRIMARY_PORT is not the primary"
[ "$(role "$PG_STANDBY_PORT")" = standby ] || fail "the node on PG_STANDBY_PORT is not a standby"
"$pg" psql "$dir" "CREATE TABLE acked_rows (id bigint PRIMARY KEY)" || fail "no table created through PG_URL"

next=1
for round in $(seq $FAILOVERS); do
    old_primary=$PG_PRIMARY_PORT old_standby=$PG_STANDBY_PORT
    writer_start $next
    wait_acked $(($(acked) + ROWS_BEFORE))
    t=$(now)
    "$pg" failover "$dir" >/dev/null || fail "failover $round failed"
    echo "failover $round (with a writer running): $(took "$t")"
    pgh_load "$dir" || fail "no env after failover $round"
    if [ "$PG_PRIMARY_PORT" != "$old_standby" ] || [ "$PG_STANDBY_PORT" != "$old_primary" ]; then
        fail "the roles did not swap in env: primary $PG_PRIMARY_PORT standby $PG_STANDBY_PORT, was $old_primary $old_standby"
    fi
    [ "$(role "$PG_PRIMARY_PORT")" = primary ] || fail "after failover $round the node on PG_PRIMARY_PORT is not the primary"
    [ "$(role "$PG_STANDBY_PORT")" = standby ] || fail "after failover $round the node on PG_STANDBY_PORT is not a standby"
    [ "$PG_URL" = "$url" ] || fail "PG_URL changed: $url became $PG_URL"
    wait_acked $(($(acked) + ROWS_AFTER))
    writer_stop
    next=$((next + ROWS_MAX))  # past every id the writer tried
    check_rows
done

t=$(now)
"$pg" stop "$dir" || fail "pg.sh stop failed"
echo "stop: $(took "$t")"
pgh_load "$dir" || fail "no env after stop"
left=$(pgh_procs "$PG_PRIMARY_DATA" "$PG_STANDBY_DATA")
[ -z "$left" ] || fail "processes of the cluster are left after stop: $left"
for port in "$PG_PRIMARY_PORT" "$PG_STANDBY_PORT"; do
    ! pgh_port_in_use "$port" || fail "something still listens on port $port after stop"
done
echo "ok: $FAILOVERS failovers, no acknowledged row lost, nothing left running"
