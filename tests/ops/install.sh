#!/usr/bin/env bash
# `make install` itself: the Makefile's install step, run on this test's
# build (BUILD_DIR) into a scratch DESTDIR. Then what it installed: each file
# where docs/OPERATIONS.md says, nothing of node_modules but what the pages
# load, the installed binary defaulting to PREFIX's pages, serving the shop
# and the dashboard from the installed copy, and the man page rendering.
#
# Environment (tests/ops/CMakeLists.txt): HF_SOURCE_DIR, HF_BUILD_DIR,
# HF_PREFIX (the build's CMAKE_INSTALL_PREFIX), HF_UNIT_DIR (where the unit goes).
. "$(dirname "$0")/lib.sh"

ops_scratch_init
dest=$ops_scratch/dest
root=$dest$HF_PREFIX

make -C "$HF_SOURCE_DIR" -o all install BUILD_DIR="$HF_BUILD_DIR" DESTDIR="$dest" \
    >"$ops_scratch/install.log" 2>&1 || { cat "$ops_scratch/install.log" >&2; fail "make install"; }

# Every file where it belongs.
expect_file() {
    [ -f "$root/$1" ] || fail "make install did not install $HF_PREFIX/$1"
}
expect_file bin/holdfast
[ -x "$root/bin/holdfast" ] || fail "bin/holdfast is not executable"
for f in shop/index.html shop/shop.js shop/api.js shop/shop.css shop/catalog.json \
    admin/index.html admin/admin.js admin/admin.css pow/solver.js pow/worker.js \
    node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css \
    node_modules/uplot/LICENSE; do
    expect_file "share/holdfast/web/$f"
done
if [ -f "$HF_SOURCE_DIR/web/pow/pow.wasm" ]; then
    expect_file share/holdfast/web/pow/pow.wasm # the build made it: it must ship
fi
expect_file share/man/man1/holdfast.1
[ -f "$dest$HF_UNIT_DIR/holdfast.service" ] || fail "make install did not install $HF_UNIT_DIR/holdfast.service"
expect_file share/holdfast/holdfast.example.json
expect_file share/doc/holdfast/OPERATIONS.md
expect_file share/doc/holdfast/LICENSE

# Of node_modules only what the pages load; nothing of the build or the tests.
extra=$(cd "$root/share/holdfast/web" && find . -type f | grep -Ev \
    '^\./(shop|admin)/[^/]+\.(html|css|js|json)$|^\./pow/(solver\.js|worker\.js|pow\.wasm)$|^\./node_modules/uplot/(LICENSE|dist/uPlot\.iife\.min\.js|dist/uPlot\.min\.css)$' \
    || true)
[ -z "$extra" ] || fail "installed files the pages do not load: $extra"

# The unit runs the installed binary.
grep -qx "ExecStart=$HF_PREFIX/bin/holdfast serve .*" "$dest$HF_UNIT_DIR/holdfast.service" ||
    fail "holdfast.service does not run $HF_PREFIX/bin/holdfast"

# The installed binary's pages are PREFIX's, not the source tree's.
help=$("$root/bin/holdfast" serve --help)
last=$(tail -n 1 <<<"$help")
[ "$last" = "The web pages' default directory: $HF_PREFIX/share/holdfast/web" ] ||
    fail "the installed binary's default --web is not $HF_PREFIX/share/holdfast/web: $last"
start_holdfast "$root/bin/holdfast" "$ops_scratch/default.log" --data "$ops_scratch/data-default"
grep -q "web=$HF_PREFIX/share/holdfast/web\$" "$ops_scratch/default.log" ||
    fail "the installed binary did not look for its pages in $HF_PREFIX/share/holdfast/web"
stop_holdfast "$ops_scratch/default.log"

# The installed copy serves the pages (DESTDIR is not PREFIX here, so --web
# names where the copy is).
start_holdfast "$root/bin/holdfast" "$ops_scratch/serve.log" --data "$ops_scratch/data" \
    --web "$root/share/holdfast/web"
base=http://127.0.0.1:$hf_port
page() { # page PATH WORD: 200 and a body holding WORD
    local out
    out=$(http "$base$1")
    [ "$(status_of "$out")" = 200 ] || fail "GET $1: $(status_of "$out"), not 200"
    grep -qF -- "$2" <<<"$out" || fail "GET $1: no \"$2\" in the page"
}
page / '<title>'
page /admin 'operator dashboard'
page /admin/admin.js 'import'
page /vendor/uplot/uPlot.iife.min.js 'uPlot'
page /pow/solver.js 'export'
if [ -f "$root/share/holdfast/web/pow/pow.wasm" ]; then
    type=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{content_type}' "$base/pow/pow.wasm")
    [ "$type" = "200 application/wasm" ] || fail "GET /pow/pow.wasm: $type"
fi
out=$(http "$base/healthz")
[ "$(status_of "$out")" = 200 ] || fail "GET /healthz: $(status_of "$out")"
stop_holdfast "$ops_scratch/serve.log"

# The man page renders without a warning, with every section it promises.
man_page=$root/share/man/man1/holdfast.1
warnings=$(groff -man -ww -z "$man_page" 2>&1)
[ -z "$warnings" ] || fail "groff warns about holdfast.1: $warnings"
text=$(MANWIDTH=80 man -l "$man_page" 2>/dev/null)
for section in NAME SYNOPSIS COMMANDS 'SERVE OPTIONS' 'CONFIGURATION FILE' KEYS ENVIRONMENT \
    FILES SIGNALS 'EXIT STATUS' EXAMPLES; do
    grep -qx "$section" <<<"$text" || fail "holdfast(1) has no $section section"
done
# Every flag of `serve --help` and every config key is in the man page.
flags=$("$root/bin/holdfast" serve --help | grep -Eo '^  --[a-z-]+' | sort -u)
[ "$(printf '%s\n' "$flags" | wc -l)" -ge 15 ] || fail "serve --help lists too few flags: $flags"
for flag in $flags; do
    grep -q -- "$flag" <<<"$text" || fail "holdfast(1) does not describe $flag"
done
keys=$("$root/bin/holdfast" serve --help | sed -n '/^configuration file keys:/,/^(policy/p' |
    sed 's/^configuration file keys://; /^(policy/d' | tr ',' '\n' | tr -d ' ')
[ "$(printf '%s\n' $keys | wc -l)" -ge 25 ] || fail "serve --help lists too few config keys: $keys"
for key in $keys; do
    grep -qw -- "$key" <<<"$text" || fail "holdfast(1) does not describe config key $key"
done
echo "ops.install: installed into DESTDIR, served from the copy, man page whole"
