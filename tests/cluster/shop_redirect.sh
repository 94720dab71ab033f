#!/usr/bin/env bash
# tests/cluster/shop_redirect.sh - a request for another shop, sent to a
# cluster's node, goes to that shop's owner (ctest cluster.shop_redirect,
# with the fixture `pg`).
#
# Two nodes, each the owner of a shop of its own in one PostgreSQL. Asked
# for the other shop's path, a node answers 307 to that shop's owner, the
# path and the query kept (the query re-encoded, meaning the same), after
# at most a few 503 not_owner while it looks the shop up, never a 404; a
# shop with no live owner is a 404 naming the node's own shop; nothing is
# changed by either. A platform's shops beyond the first thousand are found
# too (1,100 shops' rows are put in by hand, and taken out after).
#
#   HF_BINARY=build/holdfast HF_PG_ENV=DIR/env tests/cluster/shop_redirect.sh
set -uo pipefail

fail() { echo "FAIL: $*" >&2; for l in "$work"/*.log; do tail -3 "$l" >&2; done; exit 1; }

[ -n "${HF_BINARY:-}" ] && [ -x "$HF_BINARY" ] || { echo "HF_BINARY must name holdfast" >&2; exit 1; }
[ -r "${HF_PG_ENV:-}" ] || { echo "HF_PG_ENV must name the pg fixture's env file" >&2; exit 1; }
# shellcheck disable=SC1090
. "$HF_PG_ENV"

work=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-redirect.XXXXXX")
pids=()
PSQL=${PGH_BIN:-/usr/lib/postgresql/15/bin}/psql
sql() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$PG_URL" -c "$1"; }
many="zz$$"
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    sql "DELETE FROM holdfast_shops WHERE shop LIKE '$many-%'" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
a="ra-$$" b="rb-$$"

# start SHOP: a node owning SHOP; prints its port once it serves.
start() {
    local log=$work/$1.log port=
    "$HF_BINARY" serve --listen 127.0.0.1:0 --data "$work/$1" --journal "$PG_URL" \
        --shop "$1" --node "n-$1" --lease-ms 1000 --access-log off >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        port=$(sed -n 's/.*msg=listening addr=127.0.0.1:\([0-9]*\).*/\1/p' "$log")
        [ -n "$port" ] && { echo "$port"; return 0; }
        sleep 0.1
    done
    return 1
}
port_a=$(start "$a") || fail "shop $a's node did not serve"
port_b=$(start "$b") || fail "shop $b's node did not serve"
curl -s -m 5 -X PUT "http://127.0.0.1:$port_b/v1/skus/tee" -d '{"stock": 7}' | grep -q '"stock":7' ||
    fail "PUT on $b's node"

# ask TARGET: GET TARGET on node a until it stops answering 503 not_owner
# (looking the shop up: moments); sets code, leaves the reply in $work.
ask() {
    for _ in $(seq 50); do
        code=$(curl -s -m 5 -o "$work/reply" -D "$work/head" -w '%{http_code}' "http://127.0.0.1:$port_a$1")
        [ "$code" = 503 ] && grep -q '"code":"not_owner"' "$work/reply" || return 0
        grep -qi '^Retry-After:' "$work/head" || fail "a 503 while looking up has no Retry-After"
        sleep 0.1
    done
}

# Node a looks b's owner up when first asked.
target="/v1/shops/$b/skus?limit=1&after=a%20b"
ask "$target"
[ "$code" = 307 ] || fail "GET $target on $a's node: $code, not a 307 to $b's owner: $(cat "$work/reply")"
location=$(tr -d '\r' <"$work/head" | sed -n 's/^Location: //Ip')
want="http://127.0.0.1:$port_b/v1/shops/$b/skus?limit=1&after=a%20b"
[ "$location" = "$want" ] || fail "Location '$location', want '$want'"
grep -q '"code":"not_owner"' "$work/reply" || fail "the 307's body is not a not_owner error"
echo "ok: another shop's path is a 307 to its owner, the query kept"

# Followed, the same request reaches b's shop.
curl -s -m 5 -L "http://127.0.0.1:$port_a/v1/shops/$b/skus/tee" | grep -q '"stock":7' ||
    fail "the redirect did not reach $b's sku"
# A change through the redirect (curl -L keeps a 307's method and body).
curl -s -m 5 -L -X POST "http://127.0.0.1:$port_a/v1/shops/$b/holds" \
    -d '{"customer":"c1","lines":[{"sku":"tee","qty":2}]}' | grep -q '"state":"active"' ||
    fail "a hold through the redirect"
curl -s -m 5 "http://127.0.0.1:$port_b/v1/skus/tee" | grep -q '"held":2' || fail "$b's sku after it"
curl -s -m 5 "http://127.0.0.1:$port_a/v1/skus/tee" | grep -q '"code":"not_found"' ||
    fail "$a's own shop got $b's sku"
echo "ok: followed, it reaches that shop's owner, and only it"

# A shop nobody owns: 404, naming this node's shop.
ask "/v1/shops/nobody-$$/skus"
[ "$code" = 404 ] || fail "an unknown shop: $code"
grep -q "\\\\\"$a\\\\\"" "$work/reply" || fail "the 404 does not name $a: $(cat "$work/reply")"
echo "ok: a shop with no live owner is a 404 naming this node's shop"

# A platform of 1,100 shops: the last of them, in any order, is found too.
sql "INSERT INTO holdfast_shops(shop, epoch, owner, owner_url, expires, key, legacy_hold_seq,
         snapshot_seq, trim_chain)
     SELECT '$many-' || lpad(i::text, 4, '0'), 1, 'n', 'http://127.0.0.1:9', now() + interval '1 hour',
            '\\x00', 0, 0, 0 FROM generate_series(1, 1100) i" >/dev/null || fail "the shops' rows"
# expect_many_redirect SHOP WHEN: node a answers SHOP's path (one of the
# rows put in by hand) with a 307 to that row's owner url.
expect_many_redirect() {
    ask "/v1/shops/$1/skus"
    [ "$code" = 307 ] || fail "$2, shop $1: $code, not a 307"
    location=$(tr -d '\r' <"$work/head" | sed -n 's/^Location: //Ip')
    [ "$location" = "http://127.0.0.1:9/v1/shops/$1/skus" ] || fail "shop $1's Location: $location"
}
for i in 0001 0550 1100; do
    expect_many_redirect "$many-$i" "of 1,100"
done
echo "ok: shops beyond the first thousand are found"

# A read of the owners that fails is tried again. Node a's lease session
# is ended (as a restarted PostgreSQL or a dropped connection would), and
# a shop not read before is asked for at once: the read fails on the dead
# session, the lease thread reconnects at its next renewal, and the shop,
# still wanted, is read then (ask() gives up after 5 s of not_owner). If the
# renewal came first and reconnected before the read (a window of about a
# twelfth of the time), the read did not fail: another shop, another try.
#
# The lease session is told from the journal's (same name) by its last
# query, a renewal or a read of the owners. A session the last try ended
# and the renewal replaced has run neither until its next renewal: up to
# 5 s are given for one to show.
end_lease_session() {
    local ended=0
    for _ in $(seq 100); do
        ended=$(sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE application_name = 'holdfast/$a/owner/n-$a'
                       AND (query LIKE 'UPDATE holdfast_shops%' OR query LIKE 'SELECT shop, owner_url%')")
        [ "$ended" = 0 ] || break
        sleep 0.05
    done
    echo "$ended"
}
tries=0
until grep -q "cannot read other shops' owners; retrying" "$work/$a.log"; do
    tries=$((tries + 1))
    [ "$tries" -le 5 ] || fail "in 5 tries, no read of the owners met the ended session"
    ended=$(end_lease_session)
    [ "$ended" = 1 ] || fail "ended $ended lease sessions of $a's node, not 1"
    expect_many_redirect "$many-077$tries" "after the lease session ended"
done
echo "ok: a read of the owners that failed is tried again ($tries tries)"

# The lease's new session is named as the owner's again (it connects with a
# standby's name), so that a restart of this node under the same name can
# end it: once it has renewed, no session of a's node says standby.
renewed=0
for _ in $(seq 100); do
    renewed=$(sql "SELECT count(*) FROM pg_stat_activity
                   WHERE application_name = 'holdfast/$a/owner/n-$a'
                     AND query LIKE 'UPDATE holdfast_shops%'")
    [ "$renewed" = 0 ] || break
    sleep 0.05
done
[ "$renewed" = 1 ] || fail "no renewal by a session named as $a's owner after the reconnect"
standby=$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holdfast/$a/standby/n-$a'")
[ "$standby" = 0 ] || fail "$standby sessions of $a's node, its shop's owner, are named standby"
echo "ok: the lease's new session is named as the owner's"
