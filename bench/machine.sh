# shellcheck shell=bash
# bench/machine.sh - what a benchmark's output says first about the run and
# the machine, and the wait for a server it started (sourced by bench/run.sh,
# bench/cluster.sh and bench/flood.sh).

# fsync_latency_us DIR: a 4 KiB write+fdatasync on DIR's disk, in us
# (the mean of 500, dd oflag=dsync).
fsync_latency_us() {
    local f=$1/fsync.probe n=500 t0 t1
    t0=$(date +%s%N)
    dd if=/dev/zero of="$f" bs=4096 count=$n oflag=dsync conv=notrunc status=none 2>/dev/null || return
    t1=$(date +%s%N)
    rm -f "$f"
    echo $(((t1 - t0) / n / 1000))
}

# flush_latency DIR: the disk's 4 KiB overwrite+fdatasync latency on DIR as
# "p50 X, p99 Y, max Z us (N pairs)", from build/bench/fsync_probe (2000
# pairs or 3 s); empty if the probe is not built or failed. A durable reply
# waits for at least one such flush, so its p99 is the floor of theirs.
flush_latency() {
    local probe line
    probe=$(dirname "${BASH_SOURCE[0]}")/../build/bench/fsync_probe
    [ -x "$probe" ] || return 0
    line=$("$probe" "$1" --count 2000 --seconds 3 2>/dev/null) || return 0
    awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           printf "p50 %s, p99 %s, max %s us (%s pairs)", v["p50_us"], v["p99_us"], v["max_us"], v["count"] }' <<<"$line"
}

# run_header TITLE COMMAND ROOT: the title with the time, the command, the
# commit of ROOT (and whether it has changes), the machine and the kernel.
run_header() {
    echo "$1, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "command:  $2"
    echo "commit:   $(git -C "$3" rev-parse --short HEAD 2>/dev/null)$(git -C "$3" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "machine:  $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
    echo "kernel:   $(uname -srm)"
}

# wait_listening LOG PID: waits (30 s at most) until the server PID has
# logged "msg=listening addr=127.0.0.1:PORT" to LOG, and sets PORT; PORT
# stays empty if it ended or never listened.
wait_listening() {
    PORT=
    for _ in $(seq 300); do
        PORT=$(sed -n 's/.*msg=listening addr=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1")
        [ -n "$PORT" ] && return
        kill -0 "$2" 2>/dev/null || return
        sleep 0.1
    done
}
