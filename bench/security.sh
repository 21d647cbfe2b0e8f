#!/usr/bin/env bash
# What security costs per request: verifying a bearer token (per key kind, first use and
# again), and the rate limiter: get-user-by-id through HTTP with the limiter off and on
# (limits high enough never to refuse, so the limiter does all its work and nothing else
# changes), 16 connections.
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
  kill $server; wait $server 2>/dev/null || true
done
off=$(awk '/^Requests\/sec/ {print $2}' "$results/security-limiter-off.txt")
on=$(awk '/^Requests\/sec/ {print $2}' "$results/security-limiter-on.txt")
python3 -c "print(f'rate limiter: throughput ratio on/off = {$on / $off:.3f}')"
