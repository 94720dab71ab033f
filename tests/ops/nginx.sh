#!/usr/bin/env bash
# docs/OPERATIONS.md's nginx configuration, as written there (between its
# holdfast-nginx-begin and -end lines), in front of a real holdfast: nginx
# runs unprivileged with a scratch prefix on a loopback port, over TLS with a
# certificate made here; through it a hold is made, and the event stream
# (GET /v1/events) delivers each change while the stream is still open,
# i.e. unbuffered.
#
# Only the parts of the snippet that name a site are replaced (the listen
# port, the certificate, the upstream's address), each checked to be there
# exactly once, so that the test fails when the document changes shape.
#
# Environment (tests/ops/CMakeLists.txt): HF_SOURCE_DIR, HF_BINARY.
. "$(dirname "$0")/lib.sh"

nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || fail "nginx is missing: scripts/deps.sh test installs it"
command -v openssl >/dev/null || fail "openssl is missing"

ops_scratch_init
t=$ops_scratch

# ---- holdfast on loopback, as the document says to run it behind a proxy
umask 077
openssl rand -hex 32 >"$t/api_keys"
openssl rand -hex 32 >"$t/admin_key"
umask 022
shop=$(cat "$t/api_keys")
admin=$(cat "$t/admin_key")
start_holdfast "$HF_BINARY" "$t/holdfast.log" --data "$t/data" \
    --api-key-file "$t/api_keys" --admin-key-file "$t/admin_key" \
    --connections-per-address-max 0 --web ""

# ---- the snippet, made to fit this machine
snippet=$(sed -n '/^# holdfast-nginx-begin$/,/^# holdfast-nginx-end$/p' "$HF_SOURCE_DIR/docs/OPERATIONS.md")
[ -n "$snippet" ] || fail "no holdfast-nginx-begin/-end block in docs/OPERATIONS.md"
printf '%s\n' "$snippet" >"$t/snippet.conf"
replace() { # replace OLD NEW: OLD must be in the snippet exactly once
    local count
    count=$(grep -cF -- "$1" "$t/snippet.conf" || true)
    [ "$count" = 1 ] || fail "docs/OPERATIONS.md's nginx block has \"$1\" $count times, not once"
    OLD=$1 NEW=$2 perl -0pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/' "$t/snippet.conf"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$t/key.pem" -out "$t/cert.pem" 2>"$t/openssl.log" ||
    { cat "$t/openssl.log" >&2; fail "openssl req"; }
replace 'server 127.0.0.1:8080;' "server 127.0.0.1:$hf_port;"
replace 'ssl_certificate     /etc/ssl/certs/shop.example.com.pem;' "ssl_certificate $t/cert.pem;"
replace 'ssl_certificate_key /etc/ssl/private/shop.example.com.key;' "ssl_certificate_key $t/key.pem;"
# The stream's own location turns buffering off: holdfast's
# X-Accel-Buffering header does it for nginx too, but not for every proxy
# that the block is a model for.
events_block=$(sed -n '/location = \/v1\/events {/,/}/p' "$t/snippet.conf")
grep -q 'proxy_buffering off;' <<<"$events_block" ||
    fail "docs/OPERATIONS.md's nginx block does not turn buffering off for /v1/events"
cp "$t/snippet.conf" "$t/snippet.template"

# nginx as an unprivileged user: this user, or nobody when the tests run
# as root. Everything it writes is under the scratch prefix.
as_user=()
if [ "$(id -u)" -eq 0 ]; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all)
fi

start_nginx() { # on a random high loopback port; 0, or 1 if the port was taken
    port=$((20000 + RANDOM % 40000))
    cp "$t/snippet.template" "$t/snippet.conf"
    replace 'listen 443 ssl;' "listen 127.0.0.1:$port ssl;"
    mkdir -p "$t/nginx"
    cat >"$t/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $t/nginx/nginx.pid;
error_log $t/nginx/error.log info;
events { worker_connections 256; }
http {
    access_log $t/nginx/access.log;
    client_body_temp_path $t/nginx/body;
    proxy_temp_path $t/nginx/proxy;
    fastcgi_temp_path $t/nginx/fastcgi;
    uwsgi_temp_path $t/nginx/uwsgi;
    scgi_temp_path $t/nginx/scgi;
    include $t/snippet.conf;
}
EOF
    if [ "$(id -u)" -eq 0 ]; then
        chown -R 65534:65534 "$t/nginx" "$t/key.pem" "$t/cert.pem" "$t/snippet.conf"
        chmod 0755 "$t"
    fi
    rm -f "$t/nginx/error.log"
    "${as_user[@]}" "$nginx" -p "$t/nginx" -c "$t/nginx/nginx.conf" -e "$t/nginx/error.log" &
    nginx_pid=$!
    ops_pids+=("$nginx_pid")
    local deadline=$((SECONDS + 15))
    while [ $SECONDS -lt "$deadline" ]; do
        if curl -s --max-time 2 --cacert "$t/cert.pem" -o /dev/null "https://127.0.0.1:$port/healthz"; then
            return 0
        fi
        if ! kill -0 "$nginx_pid" 2>/dev/null; then
            wait "$nginx_pid" || true
            if grep -q 'Address already in use' "$t/nginx/error.log" 2>/dev/null; then
                return 1
            fi
            cat "$t/nginx/error.log" >&2 || true
            fail "nginx did not start"
        fi
        sleep 0.05
    done
    cat "$t/nginx/error.log" >&2 || true
    fail "nginx did not answer within 15 s"
}
for try in 1 2 3 4 5; do
    start_nginx && break
    [ "$try" -lt 5 ] || fail "five random ports were all taken"
done
base=https://127.0.0.1:$port
tls=(--cacert "$t/cert.pem") # the certificate is checked, not ignored

# ---- through the proxy, over TLS
out=$(http "${tls[@]}" -X PUT -H "Authorization: Bearer $admin" -d '{"stock": 10}' "$base/v1/skus/cap-red")
[ "$(status_of "$out")" = 201 ] || fail "PUT /v1/skus/cap-red through nginx: $out"

# The event stream, left open; its first event is the sku as it is.
curl -sS -N --max-time 60 "${tls[@]}" -D "$t/events.head" -H "Authorization: Bearer $shop" \
    "$base/v1/events?skus=cap-red" >"$t/events.txt" 2>"$t/events.err" &
events_pid=$!
ops_pids+=("$events_pid")
wait_for_line "$t/events.txt" 10 '^data: .*"held": ?0[,}]' ||
    { cat "$t/events.txt" "$t/events.err" >&2; fail "no first event through nginx within 10 s"; }
grep -qi '^content-type: text/event-stream' "$t/events.head" || fail "the stream is not text/event-stream"

out=$(http "${tls[@]}" -X POST -H "Authorization: Bearer $shop" -H 'Idempotency-Key: ops-nginx-1' \
    -d '{"customer": "u-1", "ip": "203.0.113.7", "lines": [{"sku": "cap-red", "qty": 2}]}' \
    "$base/v1/holds")
[ "$(status_of "$out")" = 201 ] || fail "POST /v1/holds through nginx: $out"
grep -q '"secret": *"hs_' <<<"$out" || fail "the hold's reply has no secret: $out"

# The change arrives on the open stream: nothing holds it in a buffer (a
# buffered stream would deliver it only when the stream ends, a minute on).
wait_for_line "$t/events.txt" 10 '^data: .*"held": ?2[,}]' ||
    { cat "$t/events.txt" >&2; fail "the hold's event did not come through nginx within 10 s"; }
kill -0 "$events_pid" 2>/dev/null || fail "the event stream ended instead of staying open"
kill "$events_pid"

# What nginx logged: TLS in front, holdfast behind.
grep -q '"POST /v1/holds HTTP/1.1" 201' "$t/nginx/access.log" || fail "nginx logged no 201 for the hold"
kill -QUIT "$nginx_pid"
wait "$nginx_pid" || true
stop_holdfast "$t/holdfast.log"
echo "ops.nginx: a hold made and its event streamed through nginx over TLS (port $port)"
