# The README's commands. Each installs what is missing first (scripts/deps.sh:
# Debian packages only), then builds with CMake.
#   make        build build/holdfast (optimised, asserts on)
#   make demo   build, then serve the demo shop on 127.0.0.1:8080
#   make test   build with address+undefined sanitizers in build/asan, run every test,
#               JOBS at once (the cores; suites that time deadlines run alone)
#   make bench  build, install the benchmark's peers (Redis, PostgreSQL) if
#               missing, run the benchmarks, print the figures
#   make bench-cluster  build, then measure the journal in PostgreSQL (a primary
#               and a synchronous standby on loopback) beside SQLite's and beside
#               PostgreSQL driven alone, many shops' servers on one PostgreSQL, and
#               two nodes against one (bench/cluster.sh, about 5 minutes)
#   make fuzz   build the libFuzzer targets (clang) into build/fuzz (their sources
#               say how to run them; `make test` replays fuzz/corpus/http)
#   make torture  build (optimised, in build/torture), then kill -9 the server
#               TORTURE_KILLS times (500) under load, checking after every restart
#               that each acknowledged change is there (docs/DURABILITY.md); not
#               part of `make test`: it takes twenty minutes or so
#   make cluster-test  build (optimised, in build/cluster), then fail a
#               three-node cluster (journal in PostgreSQL 15, which deps.sh cluster
#               installs with etcd and Patroni) under load: CLUSTER_KILLS kill -9s
#               of the owner (100), CLUSTER_DB_FAILOVERS PostgreSQL failovers (20),
#               CLUSTER_STOPS pauses past the lease (10), CLUSTER_PARTITIONS cuts
#               from the database (10); then docs/OPERATIONS.md's layout with
#               Patroni and etcd, its PostgreSQL leader killed
#               CLUSTER_PATRONI_ROUNDS times (3; tests/cluster/patroni.sh); every
#               acknowledged change checked after each, and the failover times
#               printed; not part of `make test` (fifteen minutes or so; ctest's
#               cluster.failover runs a few rounds)
#   make install  build, then install under $(DESTDIR)$(PREFIX): the binary, the
#               web pages, the man page, the systemd unit, an example configuration
#               (docs/OPERATIONS.md lists them). PREFIX (default /usr/local) is
#               built into the binary, as where its pages are; DESTDIR is not.
.PHONY: all deps demo test bench bench-cluster fuzz torture cluster-test install clean

JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
# The build that `make install` installs from (the install test names its own).
BUILD_DIR ?= build

all: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build build -j $(JOBS)

install: all
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR)

deps:
	@./scripts/deps.sh

demo: all
	./scripts/demo.sh

test:
	@./scripts/deps.sh test
	cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DHF_SANITIZE=ON -DBUILD_TESTING=ON >/dev/null
	cmake --build build/asan -j $(JOBS)
	cd build/asan && ctest --output-on-failure --timeout 300 -j $(JOBS)

bench: all
	@./scripts/deps.sh bench
	./bench/run.sh

bench-cluster: all
	@./scripts/deps.sh bench
	./bench/cluster.sh

fuzz: deps
	./fuzz/build.sh

TORTURE_KILLS ?= 500
torture: deps
	cmake -S . -B build/torture -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON >/dev/null
	cmake --build build/torture -j $(JOBS) --target torture
	TORTURE_KILLS=$(TORTURE_KILLS) build/torture/tests/torture/torture

CLUSTER_KILLS ?= 100
CLUSTER_DB_FAILOVERS ?= 20
CLUSTER_STOPS ?= 10
CLUSTER_PARTITIONS ?= 10
CLUSTER_PATRONI_ROUNDS ?= 3
cluster-test:
	@./scripts/deps.sh cluster
	cmake -S . -B build/cluster -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON >/dev/null
	cmake --build build/cluster -j $(JOBS) --target cluster_torture
	CLUSTER_KILLS=$(CLUSTER_KILLS) CLUSTER_DB_FAILOVERS=$(CLUSTER_DB_FAILOVERS) \
	    CLUSTER_STOPS=$(CLUSTER_STOPS) CLUSTER_PARTITIONS=$(CLUSTER_PARTITIONS) \
	    build/cluster/tests/cluster/cluster_torture
	HF_BINARY=build/cluster/holdfast tests/cluster/patroni.sh $(CLUSTER_PATRONI_ROUNDS)

clean:
	rm -rf build
