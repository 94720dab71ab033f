#!/usr/bin/env bash
# tests/cluster/pg_fixture.sh setup|check|cleanup DIR - the ctest fixture
# `pg` (tests/cluster/CMakeLists.txt): one PostgreSQL 15 primary, no standby,
# for the tests that need a database and not a failover. setup starts it and
# writes DIR/env (PG_URL and the rest, see pg.sh); a test reads DIR/env
# (HF_PG_ENV names it). check proves the fixture answers through PG_URL.
# cleanup stops it and removes its data. Exits 77 (skipped) when
# PostgreSQL 15 is not installed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/pg.sh
. "$here/pg.sh"

SKIP=77
cmd=${1:-} dir=${2:-}
[ -n "$dir" ] || { echo "usage: pg_fixture.sh setup|check|cleanup DIR" >&2; exit 2; }

case $cmd in
    setup)
        if ! pgh_available; then
            echo "SKIP: PostgreSQL 15 is not installed in $PGH_BIN (scripts/deps.sh test installs postgresql-15)"
            exit $SKIP
        fi
        pgh_start "$dir" ;;
    check)
        if ! pgh_available; then
            echo "SKIP: PostgreSQL 15 is not installed in $PGH_BIN"
            exit $SKIP
        fi
        # The way a test uses the fixture: DIR/env's assignments, then PG_URL.
        # shellcheck disable=SC1091
        . "$dir/env" || exit 1
        got=$(timeout "$PGH_PSQL_WAIT_S" "$PGH_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$PG_URL" -c "SELECT 1") || exit 1
        [ "$got" = 1 ] || { echo "FAIL: SELECT 1 through $PG_URL gave '$got'" >&2; exit 1; }
        echo "ok: $PG_URL answers" ;;
    cleanup)
        pgh_destroy "$dir" ;;
    *)
        echo "pg_fixture.sh: unknown command $cmd" >&2
        exit 2 ;;
esac
