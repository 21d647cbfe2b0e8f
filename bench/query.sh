#!/usr/bin/env bash
# Query benchmarks at scale: loads USERS synthetic users (default 1,000,000) into one tenant
# through the storage crate (kept in target/bench-query-USERS for reruns), starts the real
# release server on it, and measures with wrk (4 connections, DURATION s each):
#   filter=userName eq …, filter=emails[type eq "work" and value eq …],
#   the first page of 100 sorted by userName, a cursor page deep in that order,
# then times filter=active eq true&count=0, and reports database size per user and the
# server's resident memory.
#
#   bench/query.sh [USERS] [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

users="${1:-1000000}"
duration="${2:-15}"
port=18282
results=bench/results
mkdir -p "$results"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked --bin scimgate
cargo build --release --locked -p scimgate-store --example generate-users
bin=target/release/scimgate

data="target/bench-query-$users"
if [[ ! -f "$data/loaded" ]]; then
  rm -rf "$data"; mkdir -p "$data"
  echo "loading $users users (once; reused by later runs)"
  start=$(date +%s)
  target/release/examples/generate-users "$data/scimgate.db" "$users"
  echo "loaded in $(( $(date +%s) - start )) s"
  touch "$data/loaded"
fi

SCIMGATE_LOG=warn "$bin" serve --data "$data" --listen "127.0.0.1:$port" 2> "$results/query-server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
wait_ready "$port"
export TOKEN USERS="$users"
TOKEN=$("$bin" token --data "$data" --sub bench)
base="http://127.0.0.1:$port"


run() { # name script
  wrk -t2 -c4 -d"${duration}s" --latency -s "bench/$2" "$base" > "$results/$1.txt"
  summarise "$1" "$results/$1.txt"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $users users; ${duration}s per run, 4 connections"
run filter-userName query-username.lua
run filter-email-value-path query-email.lua

export QUERY_PATH="/scim/v2/Users?sortBy=userName&count=100"
run sorted-first-page query-fixed.lua

# A cursor halfway through the userName order, reached by walking pages of 1000.
cursor=$(python3 - "$base" "$TOKEN" "$users" <<'PY'
import json, sys, urllib.request
base, token, users = sys.argv[1], sys.argv[2], int(sys.argv[3])
cursor, seen = "", 0
while seen < users // 2:
    req = urllib.request.Request(f"{base}/scim/v2/Users?sortBy=userName&count=1000&attributes=id&cursor={cursor}",
                                 headers={"Authorization": f"Bearer {token}"})
    page = json.load(urllib.request.urlopen(req))
    seen += page["itemsPerPage"]
    cursor = page.get("nextCursor")
    if not cursor:
        break
print(cursor)
PY
)
export QUERY_PATH="/scim/v2/Users?sortBy=userName&count=100&cursor=$cursor"
run sorted-deep-cursor-page query-fixed.lua

python3 - "$base" "$TOKEN" <<'PY'
import json, sys, time, urllib.request
base, token = sys.argv[1], sys.argv[2]
url = f"{base}/scim/v2/Users?filter=active%20eq%20true&count=0"
times = []
for _ in range(5):
    t = time.perf_counter()
    body = json.load(urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})))
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"{'active eq true&count=0':32} totalResults {body['totalResults']}   median {times[2]:.0f} ms   (5 runs, min {times[0]:.0f}, max {times[-1]:.0f})")
PY

db_bytes=$(du -cb "$data"/scimgate.db* | awk 'END {print $1}')
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
echo "database: $((db_bytes / 1048576)) MiB for $users users = $((db_bytes / users)) bytes per user"
echo "server resident memory after the runs: $((rss_kib / 1024)) MiB"
