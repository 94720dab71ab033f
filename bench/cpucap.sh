# shellcheck shell=bash
# bench/cpucap.sh - CPU caps for processes, to stand in for machines of
# their own on one machine (sourced by bench/cluster.sh): a cap is a
# control group with a CPU quota. Needs root and a writable cgroup
# filesystem, v2 (/sys/fs/cgroup with the cpu controller) or v1
# (/sys/fs/cgroup/cpu); cpucap_available says whether this machine has one.
#
# A cap bounds CPU time only: the capped processes still share the disk,
# the memory bus and the kernel with everything else.

CPUCAP_PREFIX=holdfast-bench
CPUCAP_PERIOD_US=100000
CPUCAP_ROOT=
CPUCAP_V=

# cpucap_available: 0 if caps can be made here (sets CPUCAP_ROOT, CPUCAP_V).
cpucap_available() {
    [ "$(id -u)" = 0 ] || return 1
    if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        # v2: the root must hand the cpu controller to its children.
        grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
            echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || return 1
        CPUCAP_ROOT=/sys/fs/cgroup CPUCAP_V=2
    elif [ -w /sys/fs/cgroup/cpu/cgroup.procs ] && [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        CPUCAP_ROOT=/sys/fs/cgroup/cpu CPUCAP_V=1
    else
        return 1
    fi
    # Probe: make and remove one.
    cpucap_make probe 10 || return 1
    cpucap_remove probe
}

# cpucap_make NAME PCT: a cap of PCT % of one core (1..400).
cpucap_make() {
    local dir=$CPUCAP_ROOT/$CPUCAP_PREFIX-$1 quota=$(($2 * CPUCAP_PERIOD_US / 100))
    mkdir -p "$dir" 2>/dev/null || return 1
    if [ "$CPUCAP_V" = 2 ]; then
        echo "$quota $CPUCAP_PERIOD_US" >"$dir/cpu.max" 2>/dev/null || return 1
    else
        echo "$CPUCAP_PERIOD_US" >"$dir/cpu.cfs_period_us" 2>/dev/null &&
            echo "$quota" >"$dir/cpu.cfs_quota_us" 2>/dev/null || return 1
    fi
}

# cpucap_put NAME PID...: moves the processes (all their threads) under the
# cap; NAME "" puts them back under no cap.
cpucap_put() {
    local dir=$CPUCAP_ROOT p
    [ -n "$1" ] && dir=$CPUCAP_ROOT/$CPUCAP_PREFIX-$1
    shift
    for p in "$@"; do echo "$p" >"$dir/cgroup.procs" || return 1; done
}

# cpucap_remove NAME: its processes back under no cap, then the cap gone.
cpucap_remove() {
    local dir=$CPUCAP_ROOT/$CPUCAP_PREFIX-$1 p
    [ -d "$dir" ] || return 0
    while read -r p; do echo "$p" >"$CPUCAP_ROOT/cgroup.procs" 2>/dev/null; done <"$dir/cgroup.procs"
    rmdir "$dir" 2>/dev/null
}
