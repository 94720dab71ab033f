# Helpers of the operations tests (sourced): a scratch directory removed at
# exit, servers started in the background and stopped by their own pid, and
# bounded waits. Every wait has a deadline, every request a timeout, and
# every process a test starts is ended by the trap, whatever happens.

set -euo pipefail

# The make, cmake and ctest of the caller say nothing to ours.
unset MAKEFLAGS MAKELEVEL MFLAGS

ops_pids=()
ops_scratch=""

ops_cleanup() {
    local pid
    for pid in "${ops_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${ops_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$ops_scratch" ] && [ -z "${HF_TEST_KEEP:-}" ]; then
        rm -rf "$ops_scratch"
    elif [ -n "$ops_scratch" ]; then
        echo "kept $ops_scratch" >&2
    fi
}
trap ops_cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# A fresh scratch directory in $ops_scratch.
ops_scratch_init() {
    ops_scratch=$(mktemp -d "${TMPDIR:-/tmp}/holdfast-ops.XXXXXX")
}

# Waits up to $2 seconds for file $1 to hold a line matching the extended
# regular expression $3. Returns 1 on timeout.
wait_for_line() {
    local file=$1 seconds=$2 pattern=$3
    local deadline=$((SECONDS + seconds))
    while [ $SECONDS -lt "$deadline" ]; do
        if [ -f "$file" ] && grep -Eq -- "$pattern" "$file"; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# Starts `BINARY serve --listen 127.0.0.1:0 ARGS...` with its stderr in LOG,
# waits for its listening line and sets hf_pid and hf_port.
start_holdfast() {
    local binary=$1 log=$2
    shift 2
    "$binary" serve --listen 127.0.0.1:0 "$@" 2>"$log" &
    hf_pid=$!
    ops_pids+=("$hf_pid")
    if ! wait_for_line "$log" 20 'msg=listening addr=127\.0\.0\.1:[0-9]+'; then
        cat "$log" >&2
        fail "holdfast did not start"
    fi
    hf_port=$(grep -Eo 'msg=listening addr=127\.0\.0\.1:[0-9]+' "$log" | head -1 | sed 's/.*://')
}

# Sends SIGTERM to holdfast and expects a clean exit (status 0) within 30 s.
stop_holdfast() {
    local log=$1 deadline=$((SECONDS + 30))
    kill -TERM "$hf_pid"
    while kill -0 "$hf_pid" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do
        sleep 0.05
    done
    local status=0
    wait "$hf_pid" || status=$?
    if [ "$status" -ne 0 ]; then
        cat "$log" >&2
        fail "holdfast exited with $status after SIGTERM, not 0"
    fi
}

# curl with a deadline, failing on no reply; prints the body, and the
# status as the last line (after a newline).
http() {
    curl -sS --max-time 10 -w '\n%{http_code}' "$@"
}

# The status of `http ...`'s output ($1).
status_of() {
    printf '%s\n' "$1" | tail -n 1
}
