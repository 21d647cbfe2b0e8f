#!/usr/bin/env bash
# scimgate side by side with the peer SCIM servers (issue 17), in one run: the release
# binary (fresh data folder, durable writes as always, the rate limiter off as in every
# benchmark) and the peers of ../shared/peers (python scim2-server, SCIMMY; in memory), each
# driven by the same wrk workloads (../shared/peers/load.sh: 10,000 users preloaded, then
# POST /Users, GET /Users/{id}, filter userName eq, PATCH replace; 16 connections), first
# unpinned, then pinned (each server on core 1, wrk on core 0). Prints each server's
# figures with its CPU per request, then scimgate's ratio to scim2-server per workload.
#
#   bench/compare.sh                 # both modes
#   bench/compare.sh pinned          # one mode: unpinned or pinned
#   DURATION=20 bench/compare.sh     # longer runs (load.sh's knobs pass through)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
peers=$(cd "${PEERS_DIR:-../shared/peers}" && pwd)
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
release_binary
modes=${1:-unpinned pinned}
out=bench/results/compare-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
port=18180
token_peers=secret

# One mode: scimgate and the peers started with the server prefix, load.sh with wrk's.
run_mode() { # mode server_prefix wrk_prefix
  local mode=$1 server_prefix=$2 wrk_prefix=$3 data pid token
  data=$(mktemp -d target/bench-compare.XXXXXX)
  $server_prefix "$bin" serve --data "$data" --listen "127.0.0.1:$port" 2>"$out/$mode-scimgate.log" &
  pid=$!
  wait_ready "$port"
  token=$("$bin" token --data "$data" --ttl 7200 --sub bench)
  PEERS="scim2-server scimmy" CMD_PREFIX="$server_prefix" "$peers/start_peers.sh" >&2
  local name url tok spid
  for name in scimgate scim2-server scimmy; do
    case $name in
      scimgate) url=http://127.0.0.1:$port/scim/v2 tok=$token spid=$pid ;;
      scim2-server) url=http://127.0.0.1:8081/v2 tok=$token_peers spid=$(cat /tmp/peers/run/scim2-server.pid) ;;
      scimmy) url=http://127.0.0.1:8082/scim/v2 tok=$token_peers spid=$(cat /tmp/peers/run/scimmy.pid) ;;
    esac
    echo "== $mode: $name" >&2
    SERVER_PID=$spid CMD_PREFIX="$wrk_prefix" OUT="$out/$mode-$name" "$peers/load.sh" "$url" "$tok" >/dev/null
    # CPU per request: the server's share of the run (in % of one core) over its rate.
    awk -v n="$name" -v d="${DURATION:-10}" 'NR > 1 && $2 != "FAILED" {
        split($7, c, "/"); us = ($2 > 0) ? c[2] / 100 * 1e6 / $2 : 0;
        printf "%s %s %s %s %s %.0f\n", n, $1, $2, $3, $4, us }' "$out/$mode-$name/summary.txt" >>"$out/$mode.table"
  done
  "$peers/stop_peers.sh" >/dev/null 2>&1 || true
  kill "$pid" && wait "$pid" || true
  rm -rf "$data"
}

for mode in $modes; do
  case $mode in
    unpinned) run_mode unpinned "" "" ;;
    pinned) run_mode pinned "taskset -c 1" "taskset -c 0" ;;
    *) echo "compare: modes are unpinned and pinned" >&2; exit 2 ;;
  esac
  echo
  echo "## $mode ($(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  printf '%-13s %-14s %10s %9s %9s %12s\n' server workload req/s p50_ms p99_ms "server µs/req"
  sort -k2,2 -s "$out/$mode.table" | awk '{ printf "%-13s %-14s %10s %9s %9s %12s\n", $1, $2, $3, $4, $5, $6 }'
  echo
  printf '%-14s %14s %14s %14s\n' workload "scimgate req/s" "scim2-server" "ratio"
  awk '$1 == "scimgate" { s[$2] = $3 } $1 == "scim2-server" { p[$2] = $3 }
       END { for (w in s) printf "%-14s %14s %14s %13.1fx\n", w, s[w], p[w], (p[w] > 0 ? s[w] / p[w] : 0) }' \
    "$out/$mode.table" | sort
done | tee "$out/summary.txt"
echo "compare: raw outputs in $out" >&2
