#!/usr/bin/env bash
# tests/cluster/takeover_scope.sh - a takeover ends the sessions of the
# owner it saw, and no one else's (ctest cluster.takeover_scope, with the
# fixture `pg`).
#
# A node restarted under the name it owned a shop under sees itself as the
# owner and takes the shop at once; if another standby took the shop
# between that read and the take, ending every owner's session would end
# the newer owner too, and the shop would stop for a lease. So: node `a`
# owns the shop and is killed; a session named as another node's owner
# session of the shop (`holdfast/SHOP/owner/bystander`) is open; node `b`
# takes over. a's sessions must be gone, the bystander's must not.
#
#   HF_BINARY=build/holdfast HF_PG_ENV=DIR/env tests/cluster/takeover_scope.sh
set -uo pipefail

fail() { echo "FAIL: $*" >&2; for l in "$work"/*.log; do [ -f "$l" ] && tail -3 "$l" >&2; done; exit 1; }

[ -n "${HF_BINARY:-}" ] && [ -x "$HF_BINARY" ] || { echo "HF_BINARY must name holdfast" >&2; exit 1; }
[ -r "${HF_PG_ENV:-}" ] || { echo "HF_PG_ENV must name the pg fixture's env file" >&2; exit 1; }
# shellcheck disable=SC1090
. "$HF_PG_ENV"
PSQL=${PGH_BIN:-/usr/lib/postgresql/15/bin}/psql
sql() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$PG_URL" -c "$1"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-takeover.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
shop="ts-$$"
sessions() { sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holdfast/$shop/owner/$1'"; }

# start NODE: a node of the shop; waits (bounded) until it serves.
start() {
    local log=$work/$1.log
    "$HF_BINARY" serve --listen 127.0.0.1:0 --data "$work/$1" --journal "$PG_URL" \
        --shop "$shop" --node "$1" --lease-ms 1000 --access-log off >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q 'msg=listening' "$log" && return 0
        sleep 0.1
    done
    fail "node $1 did not serve within 10 s"
}

start a
[ "$(sessions a)" -ge 1 ] || fail "node a owns the shop, but no session is named as its owner's"
# The bystander: a session that stays open while psql waits on its input.
mkfifo "$work/in"
PGAPPNAME="holdfast/$shop/owner/bystander" "$PSQL" -X -q "$PG_URL" <"$work/in" >/dev/null 2>&1 &
pids+=($!)
exec 3>"$work/in" # held open: psql waits for more
for _ in $(seq 50); do [ "$(sessions bystander)" = 1 ] && break; sleep 0.1; done
[ "$(sessions bystander)" = 1 ] || fail "the bystander's session did not open"

kill -9 "${pids[0]}"
start b # waits for a's lease to run out, ends a's sessions, takes the shop
grep -q 'this node owns the shop' "$work/b.log" || fail "node b did not take the shop"
[ "$(sessions a)" = 0 ] || fail "a's sessions outlived the takeover"
[ "$(sessions bystander)" = 1 ] || fail "the takeover ended a session that was not the old owner's"
echo "ok: the takeover ended the old owner's sessions and no other"
exec 3>&-
