#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build/fuzz/ (`make fuzz`).
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
