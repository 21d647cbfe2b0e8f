#!/usr/bin/env bash
# Plugin benchmarks: whole plugin calls (fresh instance, 1 KB user, JSON parsed and
# re-serialised by username-from-email), create-user throughput through HTTP with no
# plugin, one plugin and the three Rust example plugins chained, each with the server's
# CPU time per create (steadier than throughput on a noisy VM), and start-up time.
#
#   bench/plugins.sh [DURATION_SECONDS]
#   ROUNDS=3 bench/plugins.sh 10   (the three setups in turn, three times over)
#   BENCH_BIN=/path/to/scimgate bench/plugins.sh 10   (another build's server, side by side;
#   the call benchmark is always this tree's host)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

duration="${1:-15}"
port=18484
results=bench/results
mkdir -p "$results"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
plugins/build.sh >/dev/null
cargo build --release --locked -p scimgate-plugins --example call-bench
release_binary
dist=$PWD/plugins/dist

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
target/release/examples/call-bench "$dist/username-from-email.wasm" 20000

one="[[plugins]]
name = \"username-from-email\"
file = \"$dist/username-from-email.wasm\""
three="[[plugins]]
name = \"attribute-map\"
file = \"$dist/attribute-map.wasm\"
config = { map = { \"nickName\" = \"name.middleName\" } }
$one
[[plugins]]
name = \"require-department\"
file = \"$dist/require-department.wasm\"
config = { allowed = [\"Sales\", \"Engineering\"] }"

# The server's CPU time (user and system) in clock ticks.
cpu_ticks() { # pid
  awk '{print $14 + $15}' "/proc/$1/stat"
}
ticks_per_second=$(getconf CLK_TCK)

for setup in $(for _ in $(seq "${ROUNDS:-1}"); do echo none one three; done); do
  data=$(mktemp -d "$PWD/target/bench-plugins.XXXXXX")
  case $setup in
    none) printf '' > "$data/config.toml" ;;
    one) printf '%s\n' "$one" > "$data/config.toml" ;;
    three) printf '%s\n' "$three" > "$data/config.toml" ;;
  esac
  for start in first second; do
    t0=$(date +%s%N)
    SCIMGATE_LOG=warn "$bin" serve --config "$data/config.toml" --data "$data" --listen "127.0.0.1:$port" 2>>"$results/plugins-server.log" &
    server=$!
    wait_ready "$port"
    t1=$(date +%s%N)
    echo "start-up with $setup plugin(s), $start start: $(( (t1 - t0) / 1000000 )) ms"
    if [[ $start == second ]]; then
      export TOKEN
      TOKEN=$("$bin" token --data "$data" --sub bench)
      before=$(cpu_ticks "$server")
      wrk -t2 -c16 -d"${duration}s" --latency -s bench/create-user-with-department.lua "http://127.0.0.1:$port" > "$results/plugins-$setup.txt"
      after=$(cpu_ticks "$server")
      summarise "create-user, $setup plugin(s)" "$results/plugins-$setup.txt"
      requests=$(awk '/requests in/ {print $1}' "$results/plugins-$setup.txt")
      echo "  server CPU per create: $(( (after - before) * 1000000 / ticks_per_second / requests )) µs"
    fi
    kill $server; wait $server 2>/dev/null || true
  done
  rm -rf "$data"
done
