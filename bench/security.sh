#!/usr/bin/env bash
# What security costs per request: verifying a bearer token (per key kind, first use and
# again); get-user-by-id through HTTP with one token (verified once, then remembered) and
# with 4,096 HS256 tokens in turn (more than the server remembers, so every request checks
# a signature); and the rate limiter: the same with the limiter off and on (limits high
# enough never to refuse, so the limiter does all its work and nothing else changes).
# 16 connections.
#
#   bench/security.sh [DURATION_SECONDS]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

duration="${1:-15}"
port=18282
results=bench/results
mkdir -p "$results"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked --bin scimgate
cargo build --release --locked -p scimgate-http --example jwt-bench
bin=target/release/scimgate

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
target/release/examples/jwt-bench 300

data=$(mktemp -d "$PWD/target/bench-security.XXXXXX")
trap 'rm -rf "$data"' EXIT
export TOKEN USER_ID
TOKEN=$("$bin" token --data "$data" --sub bench)
# 4,096 tokens signed with the data folder's key, as `scimgate token` signs them.
"$bin" token --data "$data" --sub seed >/dev/null
python3 - "$data/jwt-hs256.key" > "$data/tokens.txt" <<'PY'
import base64, hashlib, hmac, json, sys, time
key = base64.b64decode(open(sys.argv[1]).read().strip())
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "scimgate"}).encode())
now = int(time.time())
for n in range(4096):
    claims = {"sub": "bench", "tenant": "default", "scope": "scim:read", "exp": now + 3600,
              "nbf": now, "iat": now, "jti": f"bench-{n}", "iss": "scimgate"}
    body = header + "." + b64(json.dumps(claims).encode())
    print(body + "." + b64(hmac.new(key, body.encode(), hashlib.sha256).digest()))
PY
export TOKENS_FILE="$data/tokens.txt"
for limiter in off on; do
  if [[ $limiter == on ]]; then
    export SCIMGATE_RATE_LIMIT__ENABLED=true
    printf '[rate_limit]\nper_client = { requests_per_second = 1000000, burst = 1000000 }\nper_token = { requests_per_second = 1000000, burst = 1000000 }\n' > "$data/config.toml"
  else
    export SCIMGATE_RATE_LIMIT__ENABLED=false
    : > "$data/config.toml"
  fi
  SCIMGATE_LOG=warn "$bin" serve --config "$data/config.toml" --data "$data" --listen "127.0.0.1:$port" 2>>"$results/security-server.log" &
  server=$!
  wait_ready "$port"
  USER_ID=$(curl -fs -X POST "http://127.0.0.1:$port/scim/v2/Users" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/scim+json' \
    -d "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"target-$limiter\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  wrk -t2 -c16 -d"${duration}s" --latency -s bench/get-user.lua "http://127.0.0.1:$port" > "$results/security-limiter-$limiter.txt"
  summarise "get-user-by-id, limiter $limiter" "$results/security-limiter-$limiter.txt"
  if [[ $limiter == off ]]; then
    wrk -t2 -c16 -d"${duration}s" --latency -s bench/get-user-many-tokens.lua "http://127.0.0.1:$port" > "$results/security-many-tokens.txt"
    summarise "get-user-by-id, 4096 tokens" "$results/security-many-tokens.txt"
  fi
  kill $server; wait $server 2>/dev/null || true
done
off=$(awk '/^Requests\/sec/ {print $2}' "$results/security-limiter-off.txt")
on=$(awk '/^Requests\/sec/ {print $2}' "$results/security-limiter-on.txt")
many=$(awk '/^Requests\/sec/ {print $2}' "$results/security-many-tokens.txt")
python3 -c "print(f'rate limiter: throughput ratio on/off = {$on / $off:.3f}')"
python3 -c "print(f'HS256 verification on every request: throughput ratio to one remembered token = {$many / $off:.3f}')"
