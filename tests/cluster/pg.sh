#!/usr/bin/env bash
# shellcheck shell=bash
# shellcheck disable=SC2034 # the PG_* state: saved by name, read by callers
# tests/cluster/pg.sh - throwaway PostgreSQL 15 clusters on loopback for the
# cluster tests: a primary, and optionally a synchronous streaming standby,
# that can be failed over again and again. Both a command and a library
# (source it, then call the pgh_* functions; they return non-zero and say
# why on stderr instead of exiting).
#
#   pg.sh start DIR [--standby]  a fresh primary in DIR/primary (and a standby
#                                in DIR/standby whose flush every commit waits
#                                for); writes DIR/env and prints it
#   pg.sh stop DIR               fast shutdown of both, then SIGKILL, bounded
#   pg.sh kill-primary DIR       kill -9 of the current primary's postmaster
#   pg.sh promote DIR            the standby becomes the primary, which stops
#                                waiting for a standby; roles swap in DIR/env
#   pg.sh rejoin DIR             the dead old primary rebuilt (pg_basebackup)
#                                as a synchronous standby of the new one
#   pg.sh failover DIR           kill-primary, promote and rejoin in one
#   pg.sh psql DIR SQL           SQL run through PG_URL, rows unaligned
#   pg.sh destroy DIR            stop, then remove the data
#
# DIR/env holds shell assignments: PG_URL (a libpq URI naming both nodes,
# always in the same order, with target_session_attrs=read-write, so one URL
# finds the primary across failovers), PG_PRIMARY_PORT, PG_STANDBY_PORT,
# PG_PRIMARY_PID, PG_STANDBY_PID (the postmasters), PG_PRIMARY_DATA,
# PG_STANDBY_DATA, PG_ROOT (where the data, logs and sockets are) and
# PG_SOCKET_DIR. The nodes keep their directory and port for life; only the
# roles move between them.
#
# PostgreSQL refuses to run as root: as root its programs run as the
# `postgres` user Debian's package creates (setpriv), in a directory that user
# owns: DIR itself if it can reach it (and the socket path fits), else one
# under /var/tmp that DIR/primary and DIR/standby link to. Clients (psql,
# pg_isready) run as the caller and connect over TCP to 127.0.0.1, where the
# only authentication is trust; nothing listens elsewhere.

PGH_BIN=${PGH_BIN:-/usr/lib/postgresql/15/bin}
PGH_USER=postgres          # who runs the server when the caller is root
PGH_DB_USER=holdfast       # the superuser initdb makes; the URL's user
PGH_DB=holdfast            # the database the URL names
PGH_PORT_MIN=20000         # below Linux's ephemeral range (32768 up), so no
PGH_PORT_SPAN=12000        # client socket can be sitting on the port
PGH_PORT_TRIES=5           # ports tried before a node gives up starting
PGH_START_WAIT_S=30
PGH_STOP_WAIT_S=20
PGH_EXIT_WAIT_S=10         # for a killed server's processes to go
PGH_SYNC_WAIT_S=30         # for a standby to stream as the synchronous one
PGH_PROMOTE_WAIT_S=30
PGH_BASEBACKUP_WAIT_S=60
PGH_PSQL_WAIT_S=20         # a statement that waits for a standby that is gone
PGH_CONNECT_TIMEOUT_S=2
PGH_SOCKET_DIR_MAX=80      # sun_path holds 108 bytes with "/.s.PGSQL.NNNNN.lock"
PGH_LOG_TAIL_LINES=20

PGH_AS=() # the command prefix that runs a program as PGH_USER (empty if not root)

pgh_fail() { # pgh_fail MESSAGE [LOG]: says MESSAGE and LOG's tail, returns 1
    echo "pg.sh: $1" >&2
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        echo "pg.sh: the last lines of $2:" >&2
        tail -n $PGH_LOG_TAIL_LINES "$2" | sed 's/^/    /' >&2
    fi
    return 1
}

# pgh_available: whether the PostgreSQL 15 server programs are installed.
pgh_available() {
    local b
    for b in initdb postgres pg_ctl pg_basebackup pg_isready psql; do
        [ -x "$PGH_BIN/$b" ] || return 1
    done
}

# pgh_user: sets PGH_AS for root; PostgreSQL will not run as root.
pgh_user() {
    PGH_AS=()
    [ "$(id -u)" -eq 0 ] || return 0
    id -u "$PGH_USER" >/dev/null 2>&1 ||
        pgh_fail "running as root, and there is no user $PGH_USER to run PostgreSQL as (scripts/deps.sh test installs postgresql-15, which makes it)" || return 1
    command -v setpriv >/dev/null || pgh_fail "running as root, and there is no setpriv to run PostgreSQL as $PGH_USER" || return 1
    PGH_AS=(setpriv --reuid="$(id -u $PGH_USER)" --regid="$(id -g $PGH_USER)" --clear-groups --)
}

# pgh_as COMMAND...: COMMAND as the server's user, in PG_ROOT, with PG_ROOT
# as its home (so it reads no file of the caller's).
pgh_as() {
    (cd "$PG_ROOT" && HOME=$PG_ROOT exec "${PGH_AS[@]}" "$@")
}

# pgh_log NAME: the path of a node's log, made first by the server's user
# so that pg_ctl (as that user) can append to it.
pgh_log() {
    local log=$PG_ROOT/$1.log
    [ -f "$log" ] || { : >"$log" && chown --reference="$PG_ROOT" "$log"; }
    echo "$log"
}

# port_in_use PORT: whether some socket listens on PORT (any address).
pgh_port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h="$hex" '$4 == "0A" { split($2, a, ":"); if (a[2] == h) f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pgh_free_port: a port nothing listens on now. Another program may take it
# before the server binds it; pgh_node_start then tries another.
pgh_free_port() {
    local p
    for _ in $(seq 100); do
        p=$((PGH_PORT_MIN + RANDOM % PGH_PORT_SPAN))
        pgh_port_in_use "$p" || { echo "$p"; return 0; }
    done
    pgh_fail "no free port between $PGH_PORT_MIN and $((PGH_PORT_MIN + PGH_PORT_SPAN))"
}

# ------------------------------------------------------------------ state

# pgh_load DIR: the assignments of DIR/env into this shell.
pgh_load() {
    local dir=$1
    [ -f "$dir/env" ] || pgh_fail "$dir/env is missing: no cluster was started in $dir" || return 1
    PG_PRIMARY_PORT='' PG_STANDBY_PORT='' PG_PRIMARY_PID='' PG_STANDBY_PID=''
    PG_PRIMARY_DATA='' PG_STANDBY_DATA='' PG_ROOT='' PG_SOCKET_DIR='' PG_URL=''
    # shellcheck disable=SC1091
    . "$dir/env" || pgh_fail "$dir/env does not read as shell assignments" || return 1
    pgh_user
}

# pgh_save DIR: the cluster's state into DIR/env (replaced whole, so a reader
# never sees half of it), and onto stdout.
pgh_save() {
    local dir=$1 name tmp
    local names=(PG_URL PG_PRIMARY_PORT PG_STANDBY_PORT PG_PRIMARY_PID PG_STANDBY_PID
        PG_PRIMARY_DATA PG_STANDBY_DATA PG_ROOT PG_SOCKET_DIR)
    PG_URL="postgresql://$PGH_DB_USER@$(pgh_hosts)/$PGH_DB?target_session_attrs=read-write&connect_timeout=$PGH_CONNECT_TIMEOUT_S"
    for name in "${names[@]}"; do
        [[ "${!name}" != *"'"* ]] || pgh_fail "$name holds a quote: ${!name}" || return 1
    done
    tmp=$(mktemp "$dir/.env.XXXXXX") || return 1
    for name in "${names[@]}"; do
        printf "%s='%s'\n" "$name" "${!name}"
    done >"$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "$dir/env" || return 1
    cat "$dir/env"
}

# pgh_hosts: host:port of each node, the node in DIR/primary first, whatever
# their roles now, so the URL stays the same across failovers.
pgh_hosts() {
    local node hosts=''
    for node in primary standby; do
        if [ "$PG_PRIMARY_DATA" = "$PG_ROOT/$node" ] && [ -n "$PG_PRIMARY_PORT" ]; then
            hosts+=${hosts:+,}127.0.0.1:$PG_PRIMARY_PORT
        elif [ "$PG_STANDBY_DATA" = "$PG_ROOT/$node" ] && [ -n "$PG_STANDBY_PORT" ]; then
            hosts+=${hosts:+,}127.0.0.1:$PG_STANDBY_PORT
        fi
    done
    echo "$hosts"
}

# ------------------------------------------------------------------ processes

# pgh_procs DATA...: the pids of every process whose working directory is
# one of the data directories: a server's postmaster and all its children
# chdir there, and stay there after the postmaster dies.
pgh_procs() {
    local proc cwd data
    # One find for all of /proc: a readlink per process is slow enough to
    # matter in the loops that wait for processes to go.
    find /proc/[0-9]*/cwd -maxdepth 0 -printf '%h %l\n' 2>/dev/null |
        while read -r proc cwd; do
            cwd=${cwd% (deleted)}
            for data in "$@"; do
                if [ -n "$data" ] && [ "$cwd" = "$data" ]; then
                    echo "${proc#/proc/}"
                    break
                fi
            done
        done
}

# pgh_reap DATA: waits (bounded) for the processes of a server whose
# postmaster is gone or stopping to exit, then kills what is left.
pgh_reap() {
    local data=$1 deadline=$((SECONDS + PGH_EXIT_WAIT_S)) pids
    while [ $SECONDS -lt $deadline ]; do
        pids=$(pgh_procs "$data")
        [ -n "$pids" ] || return 0
        sleep 0.05
    done
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $pids 2>/dev/null || true  # some may have gone meanwhile
    deadline=$((SECONDS + PGH_EXIT_WAIT_S))
    while [ $SECONDS -lt $deadline ]; do
        [ -n "$(pgh_procs "$data")" ] || return 0
        sleep 0.05
    done
    pgh_fail "processes of $data outlived SIGKILL: $(pgh_procs "$data" | tr '\n' ' ')"
}

# pgh_alive PID: whether the process runs. A killed postmaster was the child
# of no process of ours (pg_ctl let it go), so it stays a zombie until
# whatever reaps orphans here does; a zombie is dead.
pgh_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# pgh_postmaster DATA: the pid of the node's live postmaster, or nothing.
# (Run as root, or as the user the server runs as, to see its directory.)
pgh_postmaster() {
    local pid
    [ -f "$1/postmaster.pid" ] || return 0
    pid=$(head -1 "$1/postmaster.pid" 2>/dev/null)
    # A live postmaster works in its data directory (a zombie has none; a
    # stranger that got the pid of a dead one works elsewhere).
    [[ "$pid" =~ ^[0-9]+$ ]] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$1" ] && echo "$pid"
    return 0
}

# ------------------------------------------------------------------ SQL

# pgh_sql PORT DB SQL: SQL on one node (as the caller, over TCP), rows
# unaligned; bounded, as a commit may wait for a standby.
pgh_sql() {
    timeout $PGH_PSQL_WAIT_S "$PGH_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
        "postgresql://$PGH_DB_USER@127.0.0.1:$1/$2?connect_timeout=$PGH_CONNECT_TIMEOUT_S" -c "$3"
}

# pgh_psql DIR SQL: SQL through the cluster's URL, whichever node is primary.
pgh_psql() {
    pgh_load "$1" || return 1
    timeout $PGH_PSQL_WAIT_S "$PGH_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$PG_URL" -c "$2"
}

# ------------------------------------------------------------------ nodes

# pgh_node_conf DATA PORT NAME STANDBYS: the node's own settings, which
# postgresql.conf includes; rewritten after pg_basebackup has copied the
# other node's. NAME is its cluster_name, which its WAL receiver also gives
# as application_name, so STANDBYS (synchronous_standby_names) can name it.
pgh_node_conf() {
    local data=$1 port=$2 name=$3 standbys=$4
    cat >"$data/node.conf" <<EOF
# tests/cluster/pg.sh: this node's own settings.
port = $port
cluster_name = '$name'
synchronous_standby_names = '$standbys'
EOF
    chown --reference="$data" "$data/node.conf"
}

# pgh_clear_stale DATA PORT: the lock files a killed postmaster left (its
# postmaster.pid, its socket's lock), if their pid is dead or a zombie. The
# server removes them itself when the pid is gone, but takes a zombie (which
# can last a while where orphans are reaped slowly) for a live postmaster.
pgh_clear_stale() {
    local data=$1 port=$2 lock pid
    for lock in "$data/postmaster.pid" "$PG_SOCKET_DIR/.s.PGSQL.$port.lock"; do
        [ -f "$lock" ] || continue
        pid=$(head -1 "$lock" 2>/dev/null)
        pid=${pid#-}  # a negative pid marks a standalone backend
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        pgh_alive "$pid" && continue
        rm -f "$lock"
        [ "$lock" = "$data/postmaster.pid" ] || rm -f "$PG_SOCKET_DIR/.s.PGSQL.$port"
    done
}

# pgh_node_start DATA NAME STANDBYS PORT: starts the node, on PORT or, if
# that is taken (or empty), on another free port; echoes the port used.
pgh_node_start() {
    local data=$1 name=$2 standbys=$3 port=$4 log out
    log=$(pgh_log "$name") || return 1
    for _ in $(seq $PGH_PORT_TRIES); do
        if [ -z "$port" ] || pgh_port_in_use "$port"; then
            port=$(pgh_free_port) || return 1
        fi
        pgh_node_conf "$data" "$port" "$name" "$standbys"
        pgh_clear_stale "$data" "$port"
        if out=$(pgh_as "$PGH_BIN/pg_ctl" start -D "$data" -l "$log" -w -t $PGH_START_WAIT_S 2>&1); then
            echo "$port"
            return 0
        fi
        # Another program took the port between the check and the bind.
        tail -n 5 "$log" | grep -q 'could not bind\|could not create any TCP/IP sockets' ||
            { pgh_fail "the $name node did not start: $out" "$log"; return 1; }
        pgh_reap "$data" || return 1
        port=''
    done
    pgh_fail "the $name node found no free port in $PGH_PORT_TRIES tries" "$log"
}

# pgh_node_stop DATA: fast shutdown (sessions ended, a checkpoint), bounded;
# then SIGKILL of whatever of the node is left.
pgh_node_stop() {
    local data=$1 pid
    [ -d "$data" ] || return 0
    pid=$(pgh_postmaster "$data")
    if [ -n "$pid" ]; then
        pgh_as "$PGH_BIN/pg_ctl" stop -D "$data" -m fast -w -t $PGH_STOP_WAIT_S >/dev/null 2>&1 ||
            kill -KILL "$pid" 2>/dev/null
    fi
    pgh_reap "$data"
}

# pgh_wait_sync PRIMARY_PORT NAME: waits (bounded) until the primary streams
# to the standby NAME as its synchronous standby.
pgh_wait_sync() {
    local port=$1 name=$2 deadline=$((SECONDS + PGH_SYNC_WAIT_S)) state=''
    while [ $SECONDS -lt $deadline ]; do
        state=$(pgh_sql "$port" postgres "SELECT state || '/' || sync_state FROM pg_stat_replication WHERE application_name = '$name'" 2>/dev/null)
        [ "$state" = streaming/sync ] && return 0
        sleep 0.05
    done
    pgh_fail "the standby $name is not streaming as the synchronous standby after ${PGH_SYNC_WAIT_S}s (state: '${state:-not connected}')" "$PG_ROOT/$name.log"
}

# pgh_check_sync PRIMARY_PORT STANDBY_PORT: a commit on the primary is
# visible on the standby at once. The probe's commit asks to wait for the
# standby to apply it (remote_apply), which only a synchronous standby makes
# it do; the servers' own default stays synchronous_commit = on (flushed on
# the standby, which is what durability needs).
pgh_check_sync() {
    local primary=$1 standby=$2 n seen
    n=$(pgh_sql "$primary" postgres "SET synchronous_commit = remote_apply; UPDATE pgh_probe SET n = n + 1 RETURNING n") ||
        pgh_fail "the probe's commit on the primary (port $primary) failed" || return 1
    seen=$(pgh_sql "$standby" postgres "SELECT n FROM pgh_probe") ||
        pgh_fail "the probe could not be read on the standby (port $standby)" || return 1
    [ "$seen" = "$n" ] ||
        pgh_fail "a commit on the primary is not visible on the standby right after it: primary $n, standby $seen"
}

# pgh_standby_build PRIMARY_PORT DATA NAME: DATA made afresh a standby of
# the primary (pg_basebackup -R: standby.signal and primary_conninfo),
# started, and made the primary's synchronous standby; echoes its port.
pgh_standby_build() {
    local primary=$1 data=$2 name=$3 port=$4 primary_data log
    primary_data=$(pgh_data_of_port "$primary")
    log=$(pgh_log "$name") || return 1
    rm -rf "$data" || return 1
    pgh_as timeout $PGH_BASEBACKUP_WAIT_S "$PGH_BIN/pg_basebackup" \
        -h 127.0.0.1 -p "$primary" -U $PGH_DB_USER -D "$data" -R -X stream -c fast --no-sync \
        >>"$log" 2>&1 || { pgh_fail "pg_basebackup from port $primary into $data failed" "$log"; return 1; }
    # Every commit from now on waits for this standby: set before it starts,
    # so no commit slips through between it streaming and the primary
    # counting on it.
    pgh_node_conf "$primary_data" "$primary" "$(basename "$primary_data")" "\"$name\""
    pgh_as "$PGH_BIN/pg_ctl" reload -D "$primary_data" >/dev/null ||
        pgh_fail "the primary did not reload its configuration" || return 1
    port=$(pgh_node_start "$data" "$name" '' "$port") || return 1
    pgh_wait_sync "$primary" "$name" || return 1
    pgh_check_sync "$primary" "$port" || return 1
    echo "$port"
}

pgh_data_of_port() {
    [ "$1" = "$PG_PRIMARY_PORT" ] && { echo "$PG_PRIMARY_DATA"; return; }
    echo "$PG_STANDBY_DATA"
}

# pgh_root DIR: where the server's user keeps the data, logs and sockets:
# DIR, if that user can write there and the socket's path fits, else a new
# directory under /var/tmp. Sets PG_ROOT and PG_SOCKET_DIR.
pgh_root() {
    local dir=$1
    PG_ROOT=$dir
    if [ ${#PGH_AS[@]} -gt 0 ]; then
        chown "$PGH_USER": "$dir" || return 1
        "${PGH_AS[@]}" test -w "$dir" 2>/dev/null || PG_ROOT=''
    fi
    [ ${#dir} -le $PGH_SOCKET_DIR_MAX ] || PG_ROOT=''
    if [ -z "$PG_ROOT" ]; then
        PG_ROOT=$(mktemp -d /var/tmp/holdfast-pg.XXXXXX) || return 1
        [ ${#PGH_AS[@]} -eq 0 ] || chown "$PGH_USER": "$PG_ROOT" || return 1
    fi
    PG_SOCKET_DIR=$PG_ROOT
}

# pgh_forget DIR: a previous cluster of DIR stopped and its data removed, so
# that `start` can be run again on the same directory after anything.
pgh_forget() {
    local dir=$1 node data
    if [ -f "$dir/env" ]; then
        pgh_stop "$dir" >/dev/null || return 1
        [ "$PG_ROOT" = "$dir" ] || [ -z "$PG_ROOT" ] || rm -rf "$PG_ROOT"
    fi
    # A start cut short before it wrote env (a test's timeout) may have left
    # servers running all the same.
    for node in primary standby; do
        data=$(realpath -e "$dir/$node" 2>/dev/null) || continue
        pgh_node_stop "$data" || return 1
        [ "$data" = "$dir/$node" ] || rm -rf "$data"
    done
    rm -rf "$dir/primary" "$dir/standby" "$dir/env" "$dir"/*.log "$dir"/.s.PGSQL.*
}

# ------------------------------------------------------------------ commands

pgh_start() {
    local dir=$1 standby=${2:-}
    [ -n "$dir" ] || pgh_fail "usage: pg.sh start DIR [--standby]" || return 1
    [ -z "$standby" ] || [ "$standby" = --standby ] || pgh_fail "start: unknown option $standby" || return 1
    pgh_available || pgh_fail "PostgreSQL 15 is not installed in $PGH_BIN (scripts/deps.sh test installs postgresql-15)" || return 1
    mkdir -p "$dir" && dir=$(realpath "$dir") || return 1
    pgh_user || return 1
    pgh_forget "$dir" || return 1
    pgh_root "$dir" || return 1
    PG_PRIMARY_DATA=$PG_ROOT/primary PG_STANDBY_DATA='' PG_PRIMARY_PORT='' PG_STANDBY_PORT=''
    PG_PRIMARY_PID='' PG_STANDBY_PID=''
    [ "$PG_ROOT" = "$dir" ] || ln -s "$PG_ROOT/primary" "$dir/primary" || return 1

    local log
    log=$(pgh_log primary) || return 1
    pgh_as "$PGH_BIN/initdb" -D "$PG_PRIMARY_DATA" -U $PGH_DB_USER -A trust -E UTF8 --no-instructions \
        --no-sync >"$log" 2>&1 || { pgh_fail "initdb failed" "$log"; return 1; }
    cat >>"$PG_PRIMARY_DATA/postgresql.conf" <<EOF

# tests/cluster/pg.sh: loopback only, durable commits, streaming replication.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKET_DIR'
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_senders = 8
wal_keep_size = '64MB'
hot_standby = on
shared_buffers = '32MB'
max_connections = 60
log_line_prefix = '%m [%p] %q%a '
include_if_exists = 'node.conf'
EOF
    # Trust on 127.0.0.1 only: no line for the unix socket or other addresses.
    cat >"$PG_PRIMARY_DATA/pg_hba.conf" <<EOF
# tests/cluster/pg.sh: anyone on 127.0.0.1, nothing else.
host all         all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
EOF
    PG_PRIMARY_PORT=$(pgh_node_start "$PG_PRIMARY_DATA" primary '' '') || return 1
    PG_PRIMARY_PID=$(pgh_postmaster "$PG_PRIMARY_DATA")
    pgh_save "$dir" >/dev/null || return 1  # so that stop finds it if what follows fails
    # pgh_probe (in the database postgres, away from the tests' own): the
    # row pgh_check_sync updates.
    if ! pgh_sql "$PG_PRIMARY_PORT" postgres "CREATE DATABASE $PGH_DB" >>"$log" 2>&1 ||
        ! pgh_sql "$PG_PRIMARY_PORT" postgres "CREATE TABLE pgh_probe (n bigint NOT NULL); INSERT INTO pgh_probe VALUES (0)" >>"$log" 2>&1; then
        pgh_fail "the primary did not take the database $PGH_DB" "$log"
        return 1
    fi

    if [ -n "$standby" ]; then
        PG_STANDBY_DATA=$PG_ROOT/standby
        [ "$PG_ROOT" = "$dir" ] || ln -s "$PG_ROOT/standby" "$dir/standby" || return 1
        pgh_save "$dir" >/dev/null || return 1  # so that stop finds both if what follows fails
        PG_STANDBY_PORT=$(pgh_standby_build "$PG_PRIMARY_PORT" "$PG_STANDBY_DATA" standby '') || return 1
        PG_STANDBY_PID=$(pgh_postmaster "$PG_STANDBY_DATA")
    fi
    pgh_save "$dir"
}

pgh_stop() {
    local dir=$1 rc=0
    pgh_load "$dir" || return 1
    pgh_node_stop "$PG_PRIMARY_DATA" || rc=1
    pgh_node_stop "$PG_STANDBY_DATA" || rc=1
    PG_PRIMARY_PID='' PG_STANDBY_PID=''
    pgh_save "$dir" >/dev/null
    local left
    left=$(pgh_procs "$PG_PRIMARY_DATA" "$PG_STANDBY_DATA")
    [ -z "$left" ] || pgh_fail "processes of $dir are still running: $(tr '\n' ' ' <<<"$left")" || return 1
    return $rc
}

pgh_kill_primary() {
    local dir=$1 pid deadline
    pgh_load "$dir" || return 1
    pid=$(pgh_postmaster "$PG_PRIMARY_DATA")
    [ -n "$pid" ] || pgh_fail "the primary ($PG_PRIMARY_DATA) is not running" || return 1
    kill -KILL "$pid" || return 1
    deadline=$((SECONDS + PGH_EXIT_WAIT_S))
    while pgh_alive "$pid"; do
        [ $SECONDS -lt $deadline ] || pgh_fail "the primary's postmaster $pid outlived SIGKILL" || return 1
        sleep 0.02
    done
    PG_PRIMARY_PID=''
    pgh_save "$dir"
}

pgh_promote() {
    local dir=$1 port data pid
    pgh_load "$dir" || return 1
    [ -n "$PG_STANDBY_DATA" ] && [ -n "$(pgh_postmaster "$PG_STANDBY_DATA")" ] ||
        pgh_fail "there is no running standby to promote in $dir" || return 1
    # The new primary must not wait for a standby: it has none yet.
    pgh_node_conf "$PG_STANDBY_DATA" "$PG_STANDBY_PORT" "$(basename "$PG_STANDBY_DATA")" ''
    pgh_as "$PGH_BIN/pg_ctl" promote -D "$PG_STANDBY_DATA" -w -t $PGH_PROMOTE_WAIT_S >/dev/null 2>&1 ||
        { pgh_fail "the standby was not promoted in ${PGH_PROMOTE_WAIT_S}s" "$PG_ROOT/$(basename "$PG_STANDBY_DATA").log"; return 1; }
    pgh_as "$PGH_BIN/pg_ctl" reload -D "$PG_STANDBY_DATA" >/dev/null || return 1
    [ "$(pgh_sql "$PG_STANDBY_PORT" postgres "SELECT pg_is_in_recovery()")" = f ] ||
        pgh_fail "the promoted standby still says it is in recovery" || return 1
    port=$PG_PRIMARY_PORT data=$PG_PRIMARY_DATA
    pid=$(pgh_postmaster "$PG_PRIMARY_DATA")
    PG_PRIMARY_PORT=$PG_STANDBY_PORT PG_PRIMARY_DATA=$PG_STANDBY_DATA
    PG_PRIMARY_PID=$(pgh_postmaster "$PG_STANDBY_DATA")
    PG_STANDBY_PORT=$port PG_STANDBY_DATA=$data PG_STANDBY_PID=$pid
    pgh_save "$dir"
}

# pgh_rejoin DIR: the standby node, stopped if it runs (an old primary that
# lost its role), rebuilt from the primary as its synchronous standby.
pgh_rejoin() {
    local dir=$1 name
    pgh_load "$dir" || return 1
    [ -n "$PG_STANDBY_DATA" ] || pgh_fail "$dir has no standby node to rejoin" || return 1
    [ -n "$(pgh_postmaster "$PG_PRIMARY_DATA")" ] || pgh_fail "the primary of $dir is not running" || return 1
    pgh_node_stop "$PG_STANDBY_DATA" || return 1
    name=$(basename "$PG_STANDBY_DATA")
    local port=$PG_STANDBY_PORT
    PG_STANDBY_PORT=$(pgh_standby_build "$PG_PRIMARY_PORT" "$PG_STANDBY_DATA" "$name" "$port") || return 1
    [ "$PG_STANDBY_PORT" = "$port" ] ||
        echo "pg.sh: port $port was taken; the $name node now listens on $PG_STANDBY_PORT and PG_URL changed" >&2
    PG_STANDBY_PID=$(pgh_postmaster "$PG_STANDBY_DATA")
    pgh_save "$dir"
}

pgh_failover() {
    pgh_kill_primary "$1" >/dev/null && pgh_promote "$1" >/dev/null && pgh_rejoin "$1"
}

pgh_destroy() {
    local dir=$1
    [ -f "$dir/env" ] || return 0
    pgh_stop "$dir" || return 1
    rm -rf "$dir/primary" "$dir/standby" "$dir"/*.log "$dir/env"
    [ "$PG_ROOT" = "$dir" ] || [ -z "$PG_ROOT" ] || rm -rf "$PG_ROOT"
}

pgh_main() {
    local cmd=${1:-} dir=${2:-}
    if [ -z "$dir" ]; then
        echo "usage: pg.sh start|stop|kill-primary|promote|rejoin|failover|destroy DIR, pg.sh start DIR --standby, pg.sh psql DIR SQL" >&2
        return 2
    fi
    case $cmd in
        start) pgh_start "$dir" "${3:-}" ;;
        stop) pgh_stop "$dir" ;;
        kill-primary) pgh_kill_primary "$dir" ;;
        promote) pgh_promote "$dir" ;;
        rejoin) pgh_rejoin "$dir" ;;
        failover) pgh_failover "$dir" ;;
        psql) pgh_psql "$dir" "${3:?pg.sh psql DIR SQL}" ;;
        destroy) pgh_destroy "$dir" ;;
        *) echo "pg.sh: unknown command $cmd" >&2; return 2 ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    pgh_main "$@"
fi
