#!/usr/bin/env bash
# tests/cluster/patroni.sh - docs/OPERATIONS.md's cluster ("Three
# machines") on one machine, with the documented Patroni settings, and its
# database failed over by Patroni itself (`make cluster-test` runs it after
# the cluster torture).
#
# On 127.0.0.1 only: one etcd member, three Patroni members (PostgreSQL 15,
# synchronous_mode and synchronous_mode_strict, ttl 20, loop_wait 2,
# retry_timeout 5), and two holdfast nodes of one shop whose journal URI
# names the three PostgreSQL servers with target_session_attrs=read-write,
# each restarted when it exits, as systemd's unit would. Clients make holds
# all along, each with an Idempotency-Key and retried with it (following a
# standby's 307, trying the other node) until it is acknowledged. Each round
# kills the Patroni leader's machine (Patroni and its PostgreSQL, kill -9),
# waits for a hold sent after the kill to be acknowledged, and restarts the
# dead member,
# which Patroni rewinds into a replica. At the end, every acknowledged hold
# must be there and active, and the sku's held count must equal their number
# (none lost, none made twice).
#
#   HF_BINARY=build/holdfast tests/cluster/patroni.sh [ROUNDS]
#
# HF_KEEP_WORK=1 keeps its directory (logs, data) for a look afterwards.
#
# Exits 77 when etcd, Patroni or PostgreSQL 15 is missing (scripts/deps.sh
# cluster installs them). Prints each round's failover time: from the kill
# to the first acknowledgement of a hold sent after it; Patroni's ttl bounds it from
# below.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/pg.sh
. "$HERE/pg.sh"

ROUNDS=${1:-3}
CLIENTS=4
MEMBERS=3
TTL_S=20 LOOP_WAIT_S=2 RETRY_TIMEOUT_S=5 # docs/OPERATIONS.md's
LEASE_MS=2000
SKU=cap
STOCK=1000000
WAIT_UP_S=90       # for Patroni to elect a leader with a synchronous standby
FAILOVER_WAIT_S=90 # for a hold acknowledged after a kill: ttl, then promotion
LOAD_S=5           # of holds before and after each fault
REQUEST_S=5        # curl's limit per request
RETRY_S=120        # one hold's retries, at most
# The defenses off (docs/POLICIES.md, "Switching the defenses off"): this
# test's clients are one machine's scripts, and what it checks is the journal.
POLICY_OFF='{"quantity": {"enabled": 0}, "identity": {"enabled": 0}, "budget": {"enabled": 0},
 "hold_share": {"held_pct_max": 100},
 "ttl": {"adaptive": 0, "pay_floor": 0, "max_ms": 86400000, "life_max_ms": 86400000},
 "newcomer": {"enabled": 0}, "reputation": {"enabled": 0}, "challenge": {"enabled": 0},
 "waitlist": {"enabled": 0}, "escalation": {"enabled": 0}, "reclaim": {"enabled": 0}}'

[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || { echo "patroni.sh: ROUNDS must be 1..99" >&2; exit 2; }
[ -n "${HF_BINARY:-}" ] && [ -x "$HF_BINARY" ] || { echo "patroni.sh: HF_BINARY must name holdfast" >&2; exit 2; }
for p in etcd patroni curl; do
    command -v "$p" >/dev/null || { echo "patroni.sh: skipped: $p is not installed (scripts/deps.sh cluster)"; exit 77; }
done
pgh_available || { echo "patroni.sh: skipped: PostgreSQL 15 is not installed (scripts/deps.sh cluster)"; exit 77; }
pgh_user || exit 1

WORK=$(mktemp -d /var/tmp/holdfast-patroni.XXXXXX) # short: sockets live here
chmod 755 "$WORK"
STOP_CLIENTS=$WORK/stop-clients
STOP_NODES=$WORK/stop-nodes
PIDS=() # etcd, the holdfast supervisors, the clients
declare -A MEMBER_PID REST_PORT PG_PORT

fail() {
    echo "FAIL: $*" >&2
    local l
    for l in "$WORK"/*.log; do [ -f "$l" ] && { echo "--- $l" >&2; tail -5 "$l" >&2; }; done
    exit 1
}
cleanup() {
    local m p
    touch "$STOP_CLIENTS" "$STOP_NODES"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    pkill -9 -f "$WORK/" 2>/dev/null # holdfast nodes and Patroni's PostgreSQL
    for m in "${!MEMBER_PID[@]}"; do kill -9 "${MEMBER_PID[$m]}" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ -n "${HF_KEEP_WORK:-}" ]; then echo "kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }

# ------------------------------------------------------------------ etcd

ETCD_CLIENT=$(pgh_free_port) && ETCD_PEER=$(pgh_free_port) || exit 1
etcd --name e0 --data-dir "$WORK/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "e0=http://127.0.0.1:$ETCD_PEER" >"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    curl -s -m 1 "http://127.0.0.1:$ETCD_CLIENT/health" | grep -q '"health":"true"' && break
    sleep 0.1
done
curl -s -m 1 "http://127.0.0.1:$ETCD_CLIENT/health" | grep -q '"health":"true"' || fail "etcd did not start"

# ------------------------------------------------------------------ Patroni

# member_config NAME: the member's configuration, the documented settings
# with loopback addresses and trust for 127.0.0.1 (nothing listens elsewhere).
member_config() {
    local m=$1 dir=$WORK/$1
    cat <<EOF
scope: holdfast-test
name: $m
restapi:
  listen: 127.0.0.1:${REST_PORT[$m]}
  connect_address: 127.0.0.1:${REST_PORT[$m]}
etcd3:
  hosts: 127.0.0.1:$ETCD_CLIENT
bootstrap:
  dcs:
    ttl: $TTL_S
    loop_wait: $LOOP_WAIT_S
    retry_timeout: $RETRY_TIMEOUT_S
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      parameters:
        synchronous_commit: "on"
        wal_log_hints: "on"
  initdb:
  - encoding: UTF8
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${PG_PORT[$m]}
  connect_address: 127.0.0.1:${PG_PORT[$m]}
  data_dir: $dir/data
  bin_dir: $PGH_BIN
  pgpass: $dir/pgpass
  authentication:
    superuser: {username: postgres, password: unused-with-trust}
    replication: {username: replicator, password: unused-with-trust}
    rewind: {username: rewinder, password: unused-with-trust}
  parameters:
    unix_socket_directories: $dir
EOF
}

# member_start NAME: its Patroni, as PostgreSQL's user when root.
member_start() {
    local m=$1
    (cd "$WORK/$m" && HOME=$WORK/$m exec "${PGH_AS[@]}" patroni "$WORK/$m/patroni.yml") \
        >>"$WORK/patroni-$m.log" 2>&1 &
    MEMBER_PID[$m]=$!
}

# member_kill NAME: the machine dies: Patroni and every PostgreSQL process
# of the member, kill -9.
member_kill() {
    local m=$1 pm kids
    pm=$(head -1 "$WORK/$m/data/postmaster.pid" 2>/dev/null)
    kids=$([ -n "$pm" ] && pgrep -P "$pm")
    # shellcheck disable=SC2086 # a list of pids
    kill -9 "${MEMBER_PID[$m]}" $pm $kids 2>/dev/null
    wait "${MEMBER_PID[$m]}" 2>/dev/null
    pgrep -f -- "$WORK/$m/data" >/dev/null && fail "member $m's PostgreSQL outlived kill -9"
    return 0
}

# rest NAME PATH: the HTTP status of the member's REST API at PATH.
rest() { curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${REST_PORT[$1]}$2"; }

# leader: the member whose REST API says it is the primary ("" if none).
leader() {
    local m
    for m in "${!REST_PORT[@]}"; do
        [ "$(rest "$m" /primary)" = 200 ] && { echo "$m"; return; }
    done
}

# wait_healthy: a leader, and a synchronous standby streaming from it.
wait_healthy() {
    local m deadline=$(($(date +%s) + WAIT_UP_S))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        LEADER=$(leader)
        if [ -n "$LEADER" ]; then
            for m in "${!REST_PORT[@]}"; do
                [ "$(rest "$m" /sync)" = 200 ] && return 0
            done
        fi
        sleep 0.5
    done
    return 1
}

for i in $(seq "$MEMBERS"); do
    m=m$i
    REST_PORT[$m]=$(pgh_free_port) && PG_PORT[$m]=$(pgh_free_port) || exit 1
    mkdir -p "$WORK/$m"
    member_config "$m" >"$WORK/$m/patroni.yml"
    [ ${#PGH_AS[@]} -eq 0 ] || chown -R "$PGH_USER": "$WORK/$m"
done
member_start m1 # the first bootstraps the cluster; the others clone it
deadline=$(($(date +%s) + WAIT_UP_S))
until [ "$(rest m1 /primary)" = 200 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "Patroni's first member did not become the leader"
    sleep 0.5
done
for i in $(seq 2 "$MEMBERS"); do member_start "m$i"; done
wait_healthy || fail "Patroni has no leader with a synchronous standby after ${WAIT_UP_S} s"
echo "ok: Patroni: leader $LEADER, a synchronous standby, $MEMBERS members, etcd :$ETCD_CLIENT"

hosts=""
for i in $(seq "$MEMBERS"); do hosts="$hosts${hosts:+,}127.0.0.1:${PG_PORT[m$i]}"; done
JOURNAL="postgresql://postgres@$hosts/holdfast?target_session_attrs=read-write&connect_timeout=2"
"$PGH_BIN/psql" -q -X -h 127.0.0.1 -p "${PG_PORT[$LEADER]}" -U postgres -d postgres \
    -c "CREATE DATABASE holdfast" >/dev/null || fail "CREATE DATABASE on the leader"

# ------------------------------------------------------------------ holdfast

# node NAME PORT: a node restarted whenever it exits until the test stops,
# as systemd's unit with Restart=on-failure and StartLimitIntervalSec=0.
node() {
    local name=$1 port=$2
    cat >"$WORK/$name.json" <<EOF
{"journal": "$JOURNAL", "shop": "main", "node": "$name",
 "node_url": "http://127.0.0.1:$port", "lease_ms": $LEASE_MS, "policy": $POLICY_OFF}
EOF
    while [ ! -e "$STOP_NODES" ]; do
        # Each line stamped with the time, to line it up with Patroni's log.
        "$HF_BINARY" serve --listen "127.0.0.1:$port" --data "$WORK/$name" \
            --config "$WORK/$name.json" --access-log off 2>&1 |
            while IFS= read -r line; do echo "$(date '+%F %T.%3N') $line"; done >>"$WORK/$name.log"
        echo "exit ${PIPESTATUS[0]}" >>"$WORK/$name.exits"
        sleep 0.2 # systemd's RestartSec; the node itself waits for PostgreSQL
    done
}
NODE_PORTS=()
for n in n1 n2; do
    port=$(pgh_free_port) || exit 1
    NODE_PORTS+=("$port")
    node "$n" "$port" &
    PIDS+=($!)
done

# request METHOD PATH [BODY [KEY]]: through either node, following a
# standby's 307; prints "STATUS BODY".
request() {
    local port out code
    for port in "${NODE_PORTS[@]}"; do
        out=$(curl -s -m "$REQUEST_S" -L --max-redirs 3 -X "$1" -w '\n%{http_code}' \
            ${4:+-H "Idempotency-Key: $4"} ${3:+-d "$3"} "http://127.0.0.1:$port$2") || continue
        code=${out##*$'\n'}
        [ "$code" = 503 ] || [ "$code" = 000 ] && continue
        echo "$code ${out%$'\n'*}"
        return 0
    done
    echo "000 "
}

deadline=$(($(date +%s) + WAIT_UP_S))
until [[ "$(request PUT /v1/skus/$SKU "{\"stock\": $STOCK}")" == 20[01]* ]]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "no node took the shop"
    sleep 0.2
done
echo "ok: two holdfast nodes, the shop owned by one, journal $JOURNAL"

# client C: holds, one after another, each retried with its key until it is
# acknowledged; appends "SENT_MS ACKED_MS ID" per acknowledged hold to
# WORK/acked.C, SENT_MS when the attempt that was acknowledged began.
client() {
    local c=$1 i=0 key body reply t0 sent
    while [ ! -e "$STOP_CLIENTS" ]; do
        i=$((i + 1))
        key="c$c-$i"
        body="{\"customer\":\"$key\",\"ip\":\"10.$c.$((i / 256 % 256)).$((i % 256))\",\"fingerprint\":\"fp-$key\",\"lines\":[{\"sku\":\"$SKU\",\"qty\":1}],\"ttl_ms\":86400000}"
        t0=$(date +%s)
        while :; do
            sent=$(now_ms)
            reply=$(request POST /v1/holds "$body" "$key")
            if [[ "$reply" == 201* ]] || [[ "$reply" == 200* ]]; then
                id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$reply")
                [ -n "$id" ] || { echo "client $c: no id in $reply" >>"$WORK/client.errors"; return; }
                echo "$sent $(now_ms) $id" >>"$WORK/acked.$c"
                break
            fi
            [[ "$reply" == 000* ]] ||
                { echo "client $c: $key: $reply" >>"$WORK/client.errors"; return; }
            [ $(($(date +%s) - t0)) -lt "$RETRY_S" ] ||
                { echo "client $c: $key: no acknowledgement in ${RETRY_S} s" >>"$WORK/client.errors"; return; }
            sleep 0.1 # not synchronisation: a retry's pause, as a client's backoff
        done
    done
}
CLIENT_PIDS=()
for c in $(seq "$CLIENTS"); do
    client "$c" &
    CLIENT_PIDS+=($!)
    PIDS+=($!)
done

acked_after() { cat "$WORK"/acked.* 2>/dev/null | awk -v t="$1" '$1 > t { n++ } END { print n + 0 }'; }

# ------------------------------------------------------------------ rounds

TIMES=()
for r in $(seq "$ROUNDS"); do
    sleep "$LOAD_S" # load before the fault
    [ -s "$WORK/client.errors" ] && fail "a client: $(head -3 "$WORK/client.errors")"
    [ "$(acked_after 0)" -gt 0 ] || fail "no hold acknowledged before round $r's fault"
    old=$LEADER
    member_kill "$old"
    kill_ms=$(now_ms) # after: a hold sent while the kill was under way may commit
    deadline=$(($(date +%s) + FAILOVER_WAIT_S))
    promoted_ms=
    until [ "$(acked_after "$kill_ms")" -gt 0 ]; do
        [ -z "$promoted_ms" ] && [ -n "$(leader)" ] && promoted_ms=$(now_ms)
        [ "$(date +%s)" -lt "$deadline" ] || fail "round $r: no hold acknowledged ${FAILOVER_WAIT_S} s after the leader's kill"
        [ -s "$WORK/client.errors" ] && fail "a client: $(head -3 "$WORK/client.errors")"
        sleep 0.1
    done
    first=$(cat "$WORK"/acked.* | awk -v t="$kill_ms" '$1 > t && (!m || $2 < m) { m = $2 } END { print m }')
    took=$((first - kill_ms))
    [ -n "$promoted_ms" ] || promoted_ms=$first # seen together
    TIMES+=("$took")
    new=$(leader)
    [ -n "$new" ] && [ "$new" != "$old" ] || fail "round $r: a hold was acknowledged, but Patroni's leader is '$new'"
    member_start "$old" # back as a replica: Patroni rewinds it
    wait_healthy || fail "round $r: no leader with a synchronous standby after the dead member came back"
    echo "ok: round $r: $old killed, $LEADER leads; the first hold sent after it acknowledged ${took} ms after the kill (Patroni's new leader seen after $((promoted_ms - kill_ms)) ms); $(acked_after 0) acknowledged so far"
done
sleep "$LOAD_S"
touch "$STOP_CLIENTS"
for p in "${CLIENT_PIDS[@]}"; do wait "$p"; done
[ -s "$WORK/client.errors" ] && fail "a client: $(head -3 "$WORK/client.errors")"

# ------------------------------------------------------------------ check

acked=$(cat "$WORK"/acked.* | wc -l)
missing=0
while read -r _ _ id; do
    reply=$(request GET "/v1/holds/$id")
    [[ "$reply" == 200* ]] && [[ "$reply" == *'"state":"active"'* ]] ||
        { missing=$((missing + 1)); echo "lost: $id: $reply" >&2; }
done < <(cat "$WORK"/acked.*)
held=$(request GET /v1/skus/$SKU | sed -n 's/.*"held":\([0-9]*\).*/\1/p')
[ "$missing" = 0 ] || fail "$missing of $acked acknowledged holds are missing or not active"
[ "$held" = "$acked" ] || fail "the sku holds $held, but $acked holds were acknowledged"
echo "ok: $acked acknowledged holds, all there and active; the sku holds exactly $held"
echo "failover times (kill -9 of the leader's machine to the first hold sent after it acknowledged, ttl $TTL_S s): $(printf '%s ms ' "${TIMES[@]}")"
