#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build/fuzz/ (`make fuzz`):
#   fuzz_decoders  journal records, snapshots, policy documents
#   fuzz_http      the HTTP API's handlers, a session of requests per input
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang >/dev/null || {
    echo "fuzz/build.sh: clang is needed for libFuzzer (Debian: apt-get install clang)" >&2
    exit 2
}
mkdir -p build/fuzz
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_POSIX_C_SOURCE=200809L
       -D_DEFAULT_SOURCE -Isrc -Isrc/engine -Isrc/policy -Isrc/guard -Isrc/store)
clang "${flags[@]}" fuzz/fuzz_decoders.c src/engine/engine.c src/policy/*.c src/guard/*.c src/store/record.c \
    $(pkg-config --cflags --libs jansson libcrypto) -lm -o build/fuzz/fuzz_decoders
echo "built build/fuzz/fuzz_decoders; run: build/fuzz/fuzz_decoders -max_total_time=60"

# The whole server but its main(); its pages from this checkout's web/.
server_src=()
for f in src/server/*.c; do
    [ "$f" = src/server/main.c ] || server_src+=("$f")
done
clang "${flags[@]}" -Isrc/server -Isrc/sim -Isrc/webhook -DHF_WEB_DIR="\"$PWD/web\"" -DHF_VERSION='"fuzz"' \
    fuzz/fuzz_http.c "${server_src[@]}" src/store/*.c src/sim/*.c src/guard/*.c src/policy/*.c src/webhook/*.c \
    src/engine/engine.c $(pkg-config --cflags --libs libmicrohttpd jansson sqlite3 libcrypto) \
    -lpthread -lm -o build/fuzz/fuzz_http
mkdir -p build/fuzz/http  # what it finds; the seeds in fuzz/corpus/http stay as written
echo "built build/fuzz/fuzz_http; run: build/fuzz/fuzz_http -dict=fuzz/http.dict" \
    "-max_total_time=60 build/fuzz/http fuzz/corpus/http"
