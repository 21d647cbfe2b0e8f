#!/usr/bin/env bash
# The change feed's cost and speed on the real release server (synchronous=FULL):
#   1. create-user throughput (wrk, 16 connections) with no receiver, one and ten push
#      receivers, and the ratio to no receiver;
#   2. write-to-receiver latency p50/p99 with one receiver, under that load and at a light
#      rate (one create at a time);
#   3. a receiver refusing (503) for OUTAGE seconds under steady create load, then
#      accepting: the drain rate (events/s) and the lag's peak (from /metrics).
# The receiver is crates/scimgate-events/examples/bench-receiver.rs, on loopback.
#
#   bench/events.sh [DURATION_SECONDS] [OUTAGE_SECONDS] [PARTS]
#     (default 20, 60 and "throughput latency outage")
#   BENCH_BIN=/path/to/scimgate bench/events.sh 10 20
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

duration="${1:-20}"
outage="${2:-60}"
parts="${3:-throughput latency outage}"
want() { [[ " $parts " == *" $1 "* ]]; }
port=18484
rport=18485
results=bench/results
mkdir -p "$results"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked -p scimgate-events --example bench-receiver
release_binary
receiver_bin=target/release/examples/bench-receiver
base="http://127.0.0.1:$port"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); ${duration}s per run, 16 connections"

server=""
receiver=""
data=""
stop_all() {
  [[ -n "$server" ]] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
  [[ -n "$receiver" ]] && { kill "$receiver" 2>/dev/null; wait "$receiver" 2>/dev/null || true; }
  [[ -n "$data" ]] && rm -rf "$data"
  server="" receiver="" data=""
}
trap stop_all EXIT

# start RECEIVERS [REFUSE_UNTIL_MS]: a fresh data folder, the receiver, the server.
start() {
  data=$(mktemp -d "$PWD/target/bench-events.XXXXXX")
  "$receiver_bin" "$rport" --refuse-until "${2:-0}" &
  receiver=$!
  {
    echo "[events]"
    for i in $(seq 0 $(($1 - 1))); do
      printf '[[events.receivers]]\nname = "r%s"\nurl = "http://127.0.0.1:%s/r%s"\ntenants = ["default"]\nmax_backoff_secs = 1\n' "$i" "$rport" "$i"
    done
  } > "$data/config.toml"
  [[ "$1" == 0 ]] && echo "" > "$data/config.toml"
  SCIMGATE_LOG=warn "$bin" serve --data "$data/d" --config "$data/config.toml" --listen "127.0.0.1:$port" 2> "$results/events-server.log" &
  server=$!
  wait_ready "$port"
  TOKEN=$("$bin" token --data "$data/d" --sub bench)
  export TOKEN
}

stats() { curl -fs --retry 5 --retry-connrefused "http://127.0.0.1:$rport/stats"; }

# Waits until the receiver has N events (at most 300 s).
wait_for() { # n
  for _ in $(seq 3000); do
    got=$(stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])' 2>/dev/null || echo 0)
    [[ "$got" -ge "$1" ]] && return 0
    sleep 0.1
  done
  echo "bench: the receiver got $got of $1 events" >&2
  return 1
}

created() { # wrk output file: requests completed
  awk '/requests in/ {print $1}' "$1"
}

declare -A rps
if want throughput; then
for n in 0 1 10; do
  start "$n"
  wrk -t2 -c16 -d"${duration}s" --latency -s bench/create-user.lua "$base" > "$results/events-create-$n.txt"
  summarise "create-user, $n receiver(s)" "$results/events-create-$n.txt"
  rps[$n]=$(awk '/^Requests\/sec/ {print $2}' "$results/events-create-$n.txt")
  if [[ "$n" == 1 ]]; then
    total=$(created "$results/events-create-$n.txt")
    wait_for "$total"
    stats | python3 -c '
import json, sys
s = json.load(sys.stdin)
p50, p99, n = s["latency_ms_p50"], s["latency_ms_p99"], s["events"]
print(f"write-to-receiver latency under load (1 receiver): p50 {p50:.1f} ms, p99 {p99:.1f} ms over {n} events")'
  fi
  stop_all
done
python3 - "${rps[0]}" "${rps[1]}" "${rps[10]}" <<'PY'
import sys
none, one, ten = map(float, sys.argv[1:])
print(f"cost of the feed: one receiver {100 * (1 - one / none):.1f} %, ten receivers {100 * (1 - ten / none):.1f} % of create throughput")
PY
fi

# Light-rate latency: a receiver of its own, one create at a time.
if want latency; then
start 1
python3 - "$base" "$TOKEN" "$rport" <<'PY'
import json, sys, time, urllib.request
base, token, rport = sys.argv[1:]
for i in range(300):
    body = json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"light{i}"}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{base}/scim/v2/Users", data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}))
    time.sleep(0.01)
for _ in range(300):
    s = json.load(urllib.request.urlopen(f"http://127.0.0.1:{rport}/stats"))
    if s["events"] >= 300:
        break
    time.sleep(0.1)
print(f"write-to-receiver latency at a light rate (1 receiver, one create every ~10 ms): p50 {s['latency_ms_p50']:.1f} ms, p99 {s['latency_ms_p99']:.1f} ms over {s['events']} events")
PY
stop_all
fi

# Outage: the receiver refuses for $outage s under steady load, then accepts.
if want outage; then
until_ms=$(python3 -c "import time; print(int((time.time() + $outage) * 1000))")
start 1 "$until_ms"
METRICS_TOKEN=$("$bin" token --data "$data/d" --sub bench-metrics --scope scim:metrics)
( for _ in $(seq $((outage + duration + 5))); do
    lag=$(curl -fs -H "Authorization: Bearer $METRICS_TOKEN" "$base/metrics" | awk '/^scimgate_events_lag\{/ {print $2}')
    echo "$(date +%s%3N) ${lag:-0}"
    sleep 1
  done ) > "$results/events-lag.txt" &
sampler=$!
wrk -t2 -c16 -d"$((outage + duration))s" -s bench/create-user.lua "$base" > "$results/events-outage-create.txt"
total=$(created "$results/events-outage-create.txt")
wait_for "$total"
kill "$sampler" 2>/dev/null || true
stats > "$results/events-outage-stats.json"
python3 - "$until_ms" "$total" "$results/events-lag.txt" "$results/events-outage-stats.json" <<'PY'
import json, sys
until, total, lagfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = json.load(open(sys.argv[4]))
samples = [tuple(map(int, l.split())) for l in open(lagfile) if len(l.split()) == 2]
peak = max((lag for _, lag in samples), default=0)
# Caught up: the first sample after the outage with no more than the writes in flight.
caught = next((t for t, lag in samples if t > until and lag <= 32), None)
arrivals = [a for a in s["arrivals_ms"] if a >= until and (caught is None or a <= caught)]
span = ((caught or max(s["arrivals_ms"])) - until) / 1000
print(f"outage under steady load: {total} creates, {s['refused']} refused tries, lag peak {peak} events; "
      f"caught up {span:.1f} s after the receiver came back, delivering {len(arrivals)} events = {len(arrivals) / max(span, 0.001):.0f} events/s")
PY
stop_all
fi
