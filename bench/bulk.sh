#!/usr/bin/env bash
# 1,000 creates in one Bulk request against 1,000 single POSTs, on the real release
# server (synchronous=FULL, default settings): wall time, creates per second, and how
# many writes each commit (fsync) carried, from /metrics (store_writes counts every write
# the writer ran, audit rows included; creates per commit counts the users alone).
# Single POSTs are sent one at a time (a client that waits for each answer) and from 16
# connections at once; the Bulk request is one request of N creates.
#
#   bench/bulk.sh [ROUNDS] [N]   (default 3 rounds of 1000)
#   BENCH_BIN=/path/to/scimgate bench/bulk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

rounds="${1:-3}"
n="${2:-1000}"
port=18686
release_binary
data=$(mktemp -d "$PWD/target/bench-data.XXXXXX")
SCIMGATE_LOG=warn "$bin" serve --data "$data" --listen "127.0.0.1:$port" 2> bench/results/bulk-server.log &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
mkdir -p bench/results
wait_ready "$port"
token=$("$bin" token --data "$data" --sub bench --scope "scim:read scim:write scim:metrics")
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); $rounds rounds of $n creates"
python3 bench/bulk.py "http://127.0.0.1:$port" "$token" "$rounds" "$n"
