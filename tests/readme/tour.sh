#!/usr/bin/env bash
# The README's five-minute tour, run as a newcomer runs it: `make demo`'s
# server (scripts/demo.sh, with its catalog) on a free loopback port, then
# every command of the tour's ```sh blocks in order, in one shell. A command
# whose line ends in `# -> NNN` must get that HTTP status; any command that
# fails stops the tour. The tour is the part of README.md between
# <!-- tour --> and <!-- /tour -->; `localhost:8080` and `build/holdfast`
# there stand for this run's server and binary.
#
# Then the simulator's table in the README must be what
# `holdfast sim --scenario merch-2020` prints: the same seed gives the same
# output, byte for byte, so a README left behind by a change fails here.
#
#   tests/readme/tour.sh BINARY README
set -euo pipefail
bin=$1 readme=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
demo_pid=""
cleanup() {
    if [ -n "$demo_pid" ]; then
        kill -TERM "$demo_pid" 2>/dev/null || true
        wait "$demo_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The tour's commands, each marked line followed by its check.
awk '
    /<!-- tour -->/ { on = 1; next }
    /<!-- \/tour -->/ { on = 0 }
    on && /^```sh/ { code = 1; next }
    on && /^```/ { code = 0; next }
    on && code {
        if (match($0, /# -> [0-9][0-9][0-9]/)) {
            want = substr($0, RSTART + 5, 3)
            printf "%s; __expect %s %d\n", substr($0, 1, RSTART - 1), want, NR
            checks++
        } else {
            print
        }
    }
    END { if (checks < 1) exit 1 }
' "$readme" >"$work/tour.body" || { echo "tour: no checked commands in $readme" >&2; exit 1; }

# Started as `make demo` starts it; a port in use is tried again elsewhere.
start_demo() {
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 12000))
        HOLDFAST_BIN="$bin" HOLDFAST_DEMO_ADDR="127.0.0.1:$port" HOLDFAST_DEMO_DATA="$work/data" \
            "$root/scripts/demo.sh" >"$work/demo.out" 2>"$work/demo.err" &
        demo_pid=$!
        # demo.sh prints its banner once the catalog is loaded, or exits.
        if timeout 60 grep -q -m1 "demo shop is running" <(tail -F --pid="$demo_pid" "$work/demo.out" 2>/dev/null); then
            return 0
        fi
        wait "$demo_pid" 2>/dev/null || true
        demo_pid=""
        rm -rf "$work/data"
    done
    echo "tour: the demo did not start:" >&2
    cat "$work/demo.err" >&2
    return 1
}
cd "$work"
port=""
start_demo

{
    cat <<PRELUDE
set -euo pipefail
# curl as the reader runs it, with the status kept for the checks.
curl() {
    command curl -sS --max-time 10 -o "$work/body" -w '%{http_code}' "\$@" >"$work/status"
    cat "$work/body"; echo
}
__expect() {
    local got; got=\$(cat "$work/status")
    if [ "\$got" != "\$1" ]; then
        echo "tour: README.md line \$2: expected HTTP \$1, got \$got" >&2; exit 1
    fi
    echo "  (line \$2: \$got as the README says)"
}
PRELUDE
    sed -e "s#localhost:8080#127.0.0.1:$port#g" -e "s#build/holdfast#$bin#g" "$work/tour.body"
} >"$work/tour.sh"
bash "$work/tour.sh"
echo "tour: $(grep -c '__expect [0-9]' "$work/tour.body") checked commands passed"

# The README's merch-2020 table, and the simulator's.
awk '/^policy +units +of ctrl/ { on = 1 } on && /^```/ { exit } on { print }' "$readme" >"$work/sim.readme"
"$bin" sim --scenario merch-2020 2>/dev/null |
    awk '/^policy +units +of ctrl/ { on = 1 } on && /^$/ { exit } on { print }' >"$work/sim.now"
if [ ! -s "$work/sim.readme" ] || ! diff -u "$work/sim.readme" "$work/sim.now"; then
    echo "tour: README.md's merch-2020 table is not what holdfast sim --scenario merch-2020 prints" >&2
    exit 1
fi
echo "tour: the README's simulator table is the simulator's ($(wc -l <"$work/sim.now") lines)"
