#!/usr/bin/env bash
# Installs what holdfast needs to build, test and benchmark on Debian 12, and
# nothing else: Debian packages only. Safe to run again; it installs only what
# is missing, so `make` stays fast on a machine that has everything.
set -euo pipefail

packages=(
    build-essential cmake pkg-config   # the toolchain
    libmicrohttpd-dev                  # HTTP server
    libjansson-dev                     # JSON parsing
    libsqlite3-dev                     # the journal
    libssl-dev                         # SHA-256 for the proof of work (libcrypto)
    libcmocka-dev                      # unit tests
    curl                               # the demo's example requests
    wrk                                # make bench
    nodejs                             # the JS reference solver's test
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
