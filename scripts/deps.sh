#!/usr/bin/env bash
# Installs what holdfast needs to build, test and benchmark on Debian 12, and
# nothing else: Debian packages with apt-get, the web pages' two npm
# packages (the chart library; Playwright's driver for the browser tests)
# with npm from web/package-lock.json, the contract test's (an OpenAPI and
# JSON Schema validator) from tests/contract/package-lock.json, and the Node
# client's build tools from clients/node/package-lock.json. Safe to run
# again; it installs only what is missing, so `make` stays fast on a machine
# that has everything.
#
#   scripts/deps.sh        what the server, the demo and the benchmarks need
#   scripts/deps.sh test   also Chromium, for the browser tests, what the
#                          operations tests run (tests/ops), and PostgreSQL
#                          15, which the cluster tests start on their own
#                          loopback ports and stop again (tests/cluster)
#   scripts/deps.sh cluster  what `test` installs, and etcd and Patroni, for
#                          make cluster-test's run of docs/OPERATIONS.md's
#                          cluster (tests/cluster/patroni.sh)
#   scripts/deps.sh bench  also the benchmark's peers (make bench): Redis and
#                          PostgreSQL 15, which bench/run.sh and bench/cluster.sh
#                          start on their own loopback ports and stop again
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    build-essential cmake pkg-config   # the toolchain
    libmicrohttpd-dev                  # HTTP server
    libjansson-dev                     # JSON parsing
    libsqlite3-dev                     # the journal
    libpq-dev                          # the journal in PostgreSQL (a cluster's nodes)
    libssl-dev                         # SHA-256 for the proof of work (libcrypto)
    libcmocka-dev                      # unit tests
    curl jq                            # the demo's and the README's example requests
    wrk                                # make bench
    nodejs                             # the JS solver's test, the browser tests, npm
    clang lld                          # web/pow/pow.wasm, the browser's solver (wasm32, wasm-ld)
)
if [ "${1:-}" = test ] || [ "${1:-}" = cluster ]; then
    packages+=(chromium fonts-dejavu-core)  # the browser tests (headless)
    packages+=(
        systemd   # systemd-analyze: the unit verified and rated (it runs no daemon here)
        man-db    # man (and groff): the man page rendered
        nginx     # docs/OPERATIONS.md's proxy configuration, run in front of the server
        openssl   # keys and a certificate made in the tests
        postgresql-15 # tests/cluster/pg.sh's primaries and standbys
    )
fi

if [ "${1:-}" = cluster ]; then
    packages+=(
        etcd-server # the store Patroni keeps its leader lock in
        patroni     # fails PostgreSQL over (it runs the postgresql-15 above)
    )
fi

if [ "${1:-}" = bench ]; then
    packages+=(
        redis-server    # the Redis+Lua peer (redis-benchmark comes with redis-tools)
        postgresql-15   # the PostgreSQL peer: initdb, postgres, pgbench, psql
        libh2o-evloop-dev # bench/shape.sh's probe of another HTTP library's event loop
    )
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Debian's nodejs comes without npm; a Node.js that brings its own does not need it.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    # Debian starts and enables nginx's own service when it installs it; the
    # tests run their own on a loopback port, so a machine that had no nginx
    # is not left serving port 80.
    if [[ " ${missing[*]} " == *" nginx "* ]]; then
        if [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now nginx >&2 || true
        elif command -v service >/dev/null 2>&1; then
            $sudo service nginx stop >&2 2>/dev/null || true  # started by its init script
        fi
    fi
    # Likewise Redis (port 6379), PostgreSQL (a "main" cluster on 5432) and
    # etcd (2379): the benchmark and the cluster tests start throwaway
    # instances of their own. Without systemd, Debian starts them through
    # their init scripts.
    for pair in redis-server:redis-server postgresql:postgresql-15 etcd:etcd-server patroni:patroni; do
        svc=${pair%%:*} pkg=${pair#*:}
        [[ " ${missing[*]} " == *" $pkg "* ]] || continue
        if [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now "$svc" >&2 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            $sudo "/etc/init.d/$svc" stop >&2 || true
        fi
    done
fi

# The npm packages, exactly as locked; again only when a lock changed: the
# web pages' (web/), the contract test's OpenAPI validator (tests/contract/)
# and the Node client's build tools (clients/node/: TypeScript and the
# OpenAPI type generator).
for dir in web tests/contract clients/node; do
    stamp=$dir/node_modules/.installed-lock
    if ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
        echo "deps: installing the npm packages of $dir" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        cp "$dir/package-lock.json" "$stamp"
    fi
done
