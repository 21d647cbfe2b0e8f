#!/usr/bin/env bash
# Where scimgate's time goes, per workload (issue 17): the release binary, 10,000 users preloaded by the peers'
# harness, then each workload of ../shared/peers/load.sh under wrk while `perf record`
# samples the server. Prints each workload's top symbols by self time (the table in
# docs/performance.md "Where the time goes") and the server's CPU per request.
#
#   bench/profile.sh                              # filter_eq get_user patch_replace post_users
#   WORKLOADS=get_user TOP=40 bench/profile.sh    # one workload, more lines
#   PERF_ARGS='--call-graph dwarf' WORKLOADS=post_users bench/profile.sh   # with callers
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
peers=$(cd "${PEERS_DIR:-../shared/peers}" && pwd)
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
# The release build keeps its symbol table (only debug info is stripped): enough for perf
# to name functions.
release_binary
out=bench/results/profile-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
port=18182
top=${TOP:-25}
data=$(mktemp -d target/bench-profile.XXXXXX)
"$bin" serve --data "$data" --listen "127.0.0.1:$port" 2>"$out/server.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
wait_ready "$port"
token=$("$bin" token --data "$data" --ttl 7200 --sub bench)
url=http://127.0.0.1:$port/scim/v2

# Preload once (load.sh then refuses the workload "none"); each workload reuses the ids.
WORKLOADS=none OUT="$out/preload" "$peers/load.sh" "$url" "$token" >/dev/null 2>"$out/preload.log" || true
for workload in ${WORKLOADS:-filter_eq get_user patch_replace post_users}; do
  perf record -q -F 1999 ${PERF_ARGS:-} -p "$pid" -o "$out/$workload.perf" -- sleep "$((${DURATION:-10} + ${WARMUP:-2} + 1))" 2>/dev/null &
  perfpid=$!
  PRELOAD_N=0 IDS_FILE="$out/preload/ids.txt" SERVER_PID=$pid WORKLOADS=$workload \
    OUT="$out/$workload" "$peers/load.sh" "$url" "$token" >/dev/null 2>"$out/$workload.log"
  wait "$perfpid" || true
  echo "== $workload: $(grep -v '^#' "$out/$workload/summary.txt" | tail -1)"
  # Self time per symbol ([k] kernel, [.] user space); head ends the pipe early.
  { perf report -i "$out/$workload.perf" --no-children --sort symbol --stdio 2>/dev/null |
    grep -v -e '^#' -e '^$' | sed -E 's/ +-? +-? *$//' | head -n "$top"; } || true
  echo
done | tee "$out/summary.txt"
echo "profile: raw outputs in $out" >&2
