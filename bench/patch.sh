#!/usr/bin/env bash
# PATCH benchmarks on the real release server (default settings, synchronous=FULL):
#   - replace of one attribute on random users, wrk with 16 connections;
#   - one PATCH adding 10,000 members to an empty group (total time);
#   - adding one member to, and removing one from, a group of 100,000 members (p50/p99
#     over 200 sequential requests each).
# Users are generated through the storage crate into a fresh data folder.
#
#   bench/patch.sh [DURATION_SECONDS]
#   BENCH_BIN=/path/to/scimgate bench/patch.sh 10   (another build's server, side by side)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

duration="${1:-20}"
port=18383
results=bench/results
users=111000
mkdir -p "$results"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked -p scimgate-store --example generate-users
release_binary

data=$(mktemp -d "$PWD/target/bench-patch.XXXXXX")
target/release/examples/generate-users "$data/scimgate.db" "$users" 2>/dev/null
SCIMGATE_LOG=warn "$bin" serve --data "$data" --listen "127.0.0.1:$port" 2> "$results/patch-server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
wait_ready "$port"
export TOKEN
TOKEN=$("$bin" token --data "$data" --sub bench)
base="http://127.0.0.1:$port"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $users users"

# Every user id, in creation order, walked with a cursor.
python3 - "$base" "$TOKEN" "$results/user-ids.txt" <<'PY'
import json, sys, urllib.request
base, token, out = sys.argv[1:]
ids, cursor = [], ""
while True:
    url = f"{base}/scim/v2/Users?attributes=id&count=1000&cursor={cursor}"
    page = json.load(urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})))
    ids += [r["id"] for r in page["Resources"]]
    cursor = page.get("nextCursor")
    if not cursor:
        break
open(out, "w").write("\n".join(ids) + "\n")
PY

export IDS_FILE="$results/user-ids.txt"
wrk -t2 -c16 -d"${duration}s" --latency -s bench/patch-user.lua "$base" > "$results/patch-user.txt"
summarise "patch-replace-one-attribute" "$results/patch-user.txt"

python3 - "$base" "$TOKEN" "$IDS_FILE" <<'PY'
import json, sys, time, urllib.request
base, token, ids_file = sys.argv[1:]
ids = open(ids_file).read().split()
H = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

def call(method, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=H, method=method)
    t = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        r.read()
        status = r.status
    return status, (time.perf_counter() - t) * 1000

def group(name):
    req = urllib.request.Request(base + "/scim/v2/Groups", headers=H, method="POST",
        data=json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}).encode())
    return json.load(urllib.request.urlopen(req))["id"]

def add(gid, members):
    return call("PATCH", f"/scim/v2/Groups/{gid}",
                {"schemas": [OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": m} for m in members]}]})

g10k = group("ten-thousand")
status, ms = add(g10k, ids[:10000])
assert status == 204, status
print(f"{'one PATCH adding 10,000 members':32} {ms:8.0f} ms total (status {status})")

big = group("hundred-thousand")
for i in range(0, 100000, 10000):
    add(big, ids[i:i + 10000])
spare = ids[100000:100200]
adds, removes = [], []
for m in spare:
    adds.append(add(big, [m])[1])
    removes.append(call("PATCH", f"/scim/v2/Groups/{big}",
        {"schemas": [OP], "Operations": [{"op": "remove", "path": f'members[value eq "{m}"]'}]})[1])
for name, xs in (("add one member to 100,000", adds), ("remove one member of 100,000", removes)):
    xs.sort()
    print(f"{name:32}  p50 {xs[len(xs)//2]:6.2f} ms   p99 {xs[int(len(xs)*0.99)-1]:6.2f} ms   ({len(xs)} sequential requests)")
PY
