#!/usr/bin/env bash
# make demo: serve the demo shop on 127.0.0.1:8080 with its data in ./data.
# The catalog is loaded once: SKUs that already exist keep their counts, so a
# second run shows what the first one left (holds, sales) after recovery.
set -euo pipefail
cd "$(dirname "$0")/.."

addr="${HOLDFAST_DEMO_ADDR:-127.0.0.1:8080}"
data="${HOLDFAST_DEMO_DATA:-./data}"
url="http://$addr"
bin="${HOLDFAST_BIN:-build/holdfast}" # the README's tour test runs its own build

# --attack-panel on: the dashboard's attack panel replays the 2020 attack
# against this demo shop (its buyers' purchases are real sales here).
"$bin" serve --listen "$addr" --data "$data" --attack-panel on &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" || true; exit 0' INT TERM

# The server is up when /healthz answers; give up after 10 s.
for _ in $(seq 1 100); do
    curl -sf "$url/healthz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "demo: the server did not start (is $addr in use?)" >&2; exit 1; }
    sleep 0.1
done

while read -r sku stock; do
    case "$sku" in ''|\#*) continue ;; esac
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/skus/$sku")
    if [ "$code" = 404 ]; then
        curl -sf -o /dev/null -X PUT "$url/v1/skus/$sku" -d "{\"stock\": $stock}"
    fi
done < scripts/demo-catalog.txt

cat <<MSG

holdfast demo shop is running (data in $data; Ctrl-C stops it):

  the shop                $url/
  the operator dashboard  $url/admin   (its attack panel replays the 2020 attack, live)

Try:
  curl -s $url/v1/skus
  curl -s -X POST $url/v1/holds -d '{"customer": "u-42", "lines": [{"sku": "cap-red", "qty": 2}, {"sku": "shirt-m", "qty": 1}], "ttl_ms": 600000}'
  curl -s -X POST $url/v1/holds/HOLD_ID/commit -H 'Hold-Secret: SECRET' -d '{"order_ref": "o-1"}'

A hoarder is asked to pay in proof of work, then capped (docs/POLICIES.md):
  curl -s -X POST $url/v1/holds -d '{"customer": "troll-1", "ip": "203.0.113.9", "lines": [{"sku": "cap-red", "qty": 10}]}'
  build/holdfast solve PREFIX BITS      # then send the same request with -H 'Holdfast-Proof: PREFIX:NONCE'
  curl -s $url/v1/identities/top; curl -s $url/v1/policy

Replay the 2020 attack on this shop, live, in two minutes (docs/SIM.md):
  build/holdfast sim --live $url --scenario merch-2020

MSG
wait "$pid"
