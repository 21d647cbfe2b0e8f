#!/usr/bin/env bash
# Benchmarks the real scimgate server (release build, default settings, synchronous=FULL on
# this machine's disk) with wrk: create-user and get-user-by-id, 16 connections each.
# Prints requests/s and p50/p99 latency; raw wrk output goes to bench/results/.
#
#   bench/http.sh [DURATION_SECONDS]   (default 20)
#   BENCH_BIN=/path/to/scimgate bench/http.sh 10   (another build, for a side-by-side run)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

duration="${1:-20}"
connections=16
threads=2
port=18181
results=bench/results
mkdir -p "$results"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
release_binary

data=$(mktemp -d "$PWD/target/bench-data.XXXXXX")
SCIMGATE_LOG=warn,scimgate_store=info "$bin" serve --data "$data" --listen "127.0.0.1:$port" 2> "$results/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
wait_ready "$port"

export TOKEN
TOKEN=$("$bin" token --data "$data" --sub bench)
base="http://127.0.0.1:$port"


echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); ${duration}s per run, $connections connections"

wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s bench/create-user.lua "$base" > "$results/create-user.txt"
summarise create-user "$results/create-user.txt"

id=$(curl -fs -X POST "$base/scim/v2/Users" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/scim+json' \
  -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bench-target","name":{"givenName":"Bench","familyName":"Target"},"emails":[{"value":"bench@example.com","type":"work","primary":true}]}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
export USER_ID="$id"
wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s bench/get-user.lua "$base" > "$results/get-user.txt"
summarise get-user-by-id "$results/get-user.txt"

# The store reports, as it closes, how many writes its commits (fsyncs) carried.
kill "$server"; wait "$server" 2>/dev/null || true
trap 'rm -rf "$data"' EXIT
grep -o 'writes=[0-9]* commits=[0-9]*' "$results/server.log" | sed 's/^/group commit: /' || true
