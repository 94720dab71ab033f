#!/usr/bin/env bash
# The systemd unit as `make install` writes it: `systemd-analyze verify`
# accepts it (with its ExecStart pointing at the installed copy of the
# binary in a scratch DESTDIR, and its man page found there), and
# `systemd-analyze security` rates its exposure at most HF_EXPOSURE_MAX.
# Both work on a unit file offline, without systemd running as PID 1.
#
# Environment (tests/ops/CMakeLists.txt): HF_SOURCE_DIR, HF_BUILD_DIR,
# HF_PREFIX, HF_UNIT_DIR (where the unit goes).
. "$(dirname "$0")/lib.sh"

# systemd-analyze's exposure scale runs from 0 (all locked down) to 10; the
# unit scores 1.2 (it must listen on the network and write its state). Its
# threshold is the exposure times ten.
HF_EXPOSURE_MAX=2.0
threshold=20

command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing: scripts/deps.sh test installs it"

ops_scratch_init
dest=$ops_scratch/dest
DESTDIR=$dest cmake --install "$HF_BUILD_DIR" >"$ops_scratch/install.log" 2>&1 ||
    { cat "$ops_scratch/install.log" >&2; fail "install"; }

installed=$dest$HF_UNIT_DIR/holdfast.service
[ -f "$installed" ] || fail "no holdfast.service in $HF_UNIT_DIR"
# The unit as installed, but naming the binary where DESTDIR put it.
unit=$ops_scratch/holdfast.service
grep -q "^ExecStart=$HF_PREFIX/bin/holdfast " "$installed" ||
    fail "ExecStart does not run $HF_PREFIX/bin/holdfast"
sed "s|^ExecStart=$HF_PREFIX/bin/holdfast |ExecStart=$dest$HF_PREFIX/bin/holdfast |" \
    "$installed" >"$unit"

# verify: the unit's syntax and settings, that ExecStart exists and runs,
# and that Documentation=man:holdfast(1) is a man page (the installed one).
if ! out=$(cd "$ops_scratch" && MANPATH=$dest$HF_PREFIX/share/man systemd-analyze verify "$unit" 2>&1); then
    printf '%s\n' "$out" >&2
    fail "systemd-analyze verify refused holdfast.service"
fi
# It warns without failing on some mistakes (an unknown setting, say).
if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    fail "systemd-analyze verify had something to say about holdfast.service"
fi

# The settings the server depends on are there (a hardening pass that drops
# one would otherwise still pass the exposure check).
for setting in 'DynamicUser=yes' 'StateDirectory=holdfast' 'ConfigurationDirectory=holdfast' \
    'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
    'PrivateDevices=yes' 'MemoryDenyWriteExecute=yes' 'CapabilityBoundingSet=' \
    'SystemCallFilter=@system-service' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
    'LimitNOFILE=65536' 'Restart=on-failure' 'TimeoutStopSec=60' \
    'LoadCredential=api_keys:/etc/holdfast/api_keys' \
    'LoadCredential=admin_key:/etc/holdfast/admin_key'; do
    grep -qxF -- "$setting" "$unit" || fail "holdfast.service lacks $setting"
done
# The server forks (snapshots) and execs itself (the attack panel): no
# filter may take those away.
if grep -E '^SystemCallFilter=~.*@process' "$unit"; then
    fail "the system call filter takes away @process: the server forks to snapshot"
fi

# security: the exposure score, offline.
if out=$(systemd-analyze security --offline=true --threshold=$threshold "$unit" 2>&1); then
    score=$(printf '%s\n' "$out" | grep -Eo 'Overall exposure level for holdfast.service: [0-9.]+' | grep -Eo '[0-9.]+$')
    [ -n "$score" ] || { printf '%s\n' "$out" >&2; fail "no exposure level in systemd-analyze security's report"; }
    echo "ops.systemd: verify clean; exposure $score (at most $HF_EXPOSURE_MAX)"
elif grep -q 'Overall exposure level' <<<"$out"; then
    printf '%s\n' "$out" | grep -v '✓' >&2
    fail "holdfast.service's exposure is over $HF_EXPOSURE_MAX"
elif grep -Eqi 'unrecognized option|unknown option|offline' <<<"$out"; then
    # Before systemd 250 the review needs the unit loaded by PID 1.
    echo "ops.systemd: verify clean; exposure NOT checked: this systemd-analyze cannot review a unit file offline"
else
    printf '%s\n' "$out" >&2
    fail "systemd-analyze security failed"
fi
