#!/usr/bin/env bash
# tests/cluster/journal_gap.sh - rows past a gap in the journal in
# PostgreSQL (ctest cluster.journal_gap, with the fixture `pg`).
#
# A node sends up to four rows at once, and they commit in any order; a
# node that ends with rows in flight can leave a committed row past one
# that never committed. Such rows were never acknowledged: none was sent
# when the journal was durable up to the gap (its durable_seq). So:
#   1. a row past a gap whose durable_seq is below the gap is dropped at the
#      next start, and everything acknowledged before the gap is served;
#   2. a row past a gap whose durable_seq reaches into it says acknowledged
#      records are missing: the start is refused, and nothing is changed.
# The rows are put there by hand, as a crash would leave them.
#
#   HF_BINARY=build/holdfast HF_PG_ENV=DIR/env tests/cluster/journal_gap.sh
set -uo pipefail

fail() { echo "FAIL: $*" >&2; [ -n "${log:-}" ] && tail -5 "$log" >&2; exit 1; }

[ -n "${HF_BINARY:-}" ] && [ -x "$HF_BINARY" ] || fail "HF_BINARY must name the holdfast binary"
[ -r "${HF_PG_ENV:-}" ] || fail "HF_PG_ENV must name the pg fixture's env file"
# shellcheck disable=SC1090
. "$HF_PG_ENV"
PSQL=${PGH_BIN:-/usr/lib/postgresql/15/bin}/psql
sql() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$PG_URL" -c "$1"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-gap.XXXXXX")
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
shop="gap-$$"

# start: the node in the background; waits (bounded) for it to serve.
start() {
    log=$work/node-$1.log
    "$HF_BINARY" serve --listen 127.0.0.1:0 --data "$work/data" --journal "$PG_URL" \
        --shop "$shop" --node gap --access-log off >"$log" 2>&1 &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*msg=listening addr=127.0.0.1:\([0-9]*\).*/\1/p' "$log")
        [ -n "$port" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    fail "the node did not listen within 10 s"
}
stop() {
    kill -TERM "$pid" && wait "$pid"
    local rc=$?
    pid=
    [ "$rc" = 0 ] || fail "the node exited $rc after SIGTERM"
}
call() { curl -s -m 5 -X "$1" "http://127.0.0.1:$port$2" ${3:+-d "$3"}; }
# The journal's last record: its last row's, or the snapshot's (a stop
# snapshots, and the rows it covers go).
last_seq() {
    sql "SELECT greatest((SELECT coalesce(max(first_seq + records - 1), 0) FROM holdfast_journal
                          WHERE shop = '$shop'),
                         (SELECT snapshot_seq FROM holdfast_shops WHERE shop = '$shop'))"
}
# orphan FIRST DURABLE: a row as a node past a gap would leave it.
orphan() {
    sql "INSERT INTO holdfast_journal(shop, first_seq, records, epoch, body, chain, durable_seq)
         SELECT '$shop', $1, 1, epoch, '\\x00'::bytea, 0, $2 FROM holdfast_shops WHERE shop = '$shop'"
}

# Some acknowledged state, then a clean stop.
start 1 || fail "the node did not start"
call PUT /v1/skus/tee '{"stock": 10}' | grep -q '"stock":10' || fail "PUT sku"
for c in 1 2 3; do
    call POST /v1/holds "{\"customer\":\"c$c\",\"lines\":[{\"sku\":\"tee\",\"qty\":1}]}" |
        grep -q '"state":"active"' || fail "hold $c"
done
stop
last=$(last_seq)
[ -n "$last" ] && [ "$last" -ge 4 ] || fail "the journal ends at '$last'"

# 1. A gap, then a row sent before anything past the gap was durable.
orphan $((last + 3)) "$last"
start 2 || fail "the node refused a journal with an unacknowledged row past a gap"
grep -q 'msg="dropped journal rows past a gap' "$log" || fail "no word of the dropped row"
call GET /v1/skus/tee | grep -q '"held":3' || fail "the acknowledged holds are not all there"
[ "$(sql "SELECT count(*) FROM holdfast_journal WHERE shop = '$shop' AND first_seq = $((last + 3))")" = 0 ] ||
    fail "the row past the gap is still there"
call POST /v1/holds '{"customer":"c4","lines":[{"sku":"tee","qty":1}]}' | grep -q '"state":"active"' ||
    fail "a hold after the dropped row"
stop
echo "ok: an unacknowledged row past a gap is dropped, the rest served"

# 2. A gap, then a row sent when the records in the gap were durable.
last=$(last_seq)
orphan $((last + 3)) $((last + 1))
rows_before=$(sql "SELECT count(*) FROM holdfast_journal WHERE shop = '$shop'")
if start 3; then
    fail "the node served a journal that lacks acknowledged records"
fi
wait "$pid" 2>/dev/null
pid=
grep -q 'lacks records from' "$log" || fail "the refusal does not say what is missing"
[ "$(sql "SELECT count(*) FROM holdfast_journal WHERE shop = '$shop'")" = "$rows_before" ] ||
    fail "the refused start changed the journal"
echo "ok: acknowledged records missing past a gap refuse the start, nothing changed"
