#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build/fuzz/ (`make fuzz`):
#   fuzz_decoders  journal records, snapshots, policy documents
#   fuzz_http      the HTTP API's handlers, a session of requests per input
# CMake builds them (HF_FUZZ in CMakeLists.txt), from the same source lists
# and libraries as the server, so a new module or library reaches them too.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang >/dev/null || {
    echo "fuzz/build.sh: clang is needed for libFuzzer (Debian: apt-get install clang)" >&2
    exit 2
}
cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DHF_FUZZ=ON -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j "${JOBS:-$(nproc)}" --target fuzz_http fuzz_decoders
echo "built build/fuzz/fuzz_decoders; run: build/fuzz/fuzz_decoders -max_total_time=60"
mkdir -p build/fuzz/http  # what it finds; the seeds in fuzz/corpus/http stay as written
echo "built build/fuzz/fuzz_http; run: build/fuzz/fuzz_http -dict=fuzz/http.dict" \
    "-max_total_time=60 build/fuzz/http fuzz/corpus/http"
