#!/usr/bin/env bash
# The bench/http.sh workloads on PostgreSQL, with one and with two instances, side by side
# with SQLite in the same run (wrk, 16 connections in all; two instances: 8 each, their
# request rates added), on USERS users preloaded (default 10,000; generated into SQLite
# and copied to PostgreSQL with `scimgate migrate`):
#   create-user, get-user-by-id, filter userName eq, PATCH replace of one attribute;
# then the query benchmark at BIG users (default 1,000,000) on PostgreSQL: filter userName
# eq with 4 connections (p50), as bench/query.sh measures it on SQLite.
# PostgreSQL is the server POSTGRES_TEST_URL names, else a throwaway cluster that
# scripts/with-postgres starts (Debian's postgresql, default durability: fsync on,
# synchronous_commit on). Raw wrk output goes to bench/results/.
#
#   bench/postgres.sh [DURATION_SECONDS] [USERS] [BIG]    (defaults 15, 10000, 1000000; BIG=0 skips)
#   BIG_DATABASE=URL bench/postgres.sh …   reuses a database already filled from the BIG seed
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${POSTGRES_TEST_URL:-}" ]]; then
  exec scripts/with-postgres "$0" "$@"
fi
source bench/lib.sh

duration="${1:-15}"
users="${2:-10000}"
big="${3:-1000000}"
results=bench/results
mkdir -p "$results"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
command -v psql >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client; }
cargo build --release --locked -p scimgate-store --example generate-users
release_binary

scratch=$(mktemp -d "$PWD/target/bench-pg.XXXXXX")
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

# A fresh database on the server; prints its address.
new_database() { # name
  psql "$POSTGRES_TEST_URL" -qAtc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
  echo "$POSTGRES_TEST_URL dbname=$1"
}

# Starts a server on folder DATA (with the signing key of folder $keys, which every server
# shares) at PORT, on the database URL (empty: the folder's SQLite file); records its pid.
start() { # data port url
  mkdir -p "$1"; chmod 700 "$1"
  [[ "$keys" -ef "$1" ]] || cp "$keys/jwt-hs256.key" "$1/"
  if [[ -n "$3" ]]; then
    printf 'database = "%s"\n' "$3" > "$1/scimgate.toml"
    SCIMGATE_LOG=warn "$bin" serve --data "$1" --config "$1/scimgate.toml" --listen "127.0.0.1:$2" 2>> "$results/postgres-server.log" &
  else
    SCIMGATE_LOG=warn "$bin" serve --data "$1" --listen "127.0.0.1:$2" 2>> "$results/postgres-server.log" &
  fi
  servers+=($!)
  wait_ready "$2"
}

stop_all() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  servers=()
}

# wrk on each base URL at once (16 connections split between them); one line with the
# request rates added and the worst p50 and p99.
run() { # name script base...
  local name=$1 script=$2; shift 2
  local n=$# i=0 files=() pids=() file
  for base in "$@"; do
    i=$((i + 1))
    file="$results/postgres-${name//[^a-zA-Z0-9]/_}-$i.txt"
    RUN_ID="i$i" wrk -t"$((n == 1 ? 2 : 1))" -c"$((16 / n))" -d"${duration}s" --latency -s "bench/$script" "$base" > "$file" &
    pids+=($!)
    files+=("$file")
  done
  wait "${pids[@]}"
  python3 - "$name" "${files[@]}" <<'PY'
import re, sys
name, files = sys.argv[1], sys.argv[2:]
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v); x = float(m.group(1))
    return x / 1000 if m.group(2) == "us" else x * 1000 if m.group(2) == "s" else x
rps = p50 = p99 = 0.0; errors = 0
for f in files:
    text = open(f).read()
    rps += float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = max(p50, ms(re.search(r"\s50%\s+(\S+)", text).group(1)))
    p99 = max(p99, ms(re.search(r"\s99%\s+(\S+)", text).group(1)))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors += int(m.group(1)) if m else 0
print(f"{name:34} {rps:9.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   non-2xx {errors}")
if errors:
    sys.exit(1)
PY
}

# Ids of the preloaded users, for get-by-id and PATCH.
user_ids() { # base
  python3 - "$1" "$TOKEN" "$scratch/ids.txt" <<'PY'
import json, sys, urllib.request
base, token, out = sys.argv[1:]
ids, cursor = [], ""
while len(ids) < 5000:
    req = urllib.request.Request(f"{base}/scim/v2/Users?count=1000&attributes=id&cursor={cursor}",
                                 headers={"Authorization": f"Bearer {token}"})
    page = json.load(urllib.request.urlopen(req))
    ids += [r["id"] for r in page["Resources"]]
    cursor = page.get("nextCursor")
    if not cursor:
        break
open(out, "w").write("\n".join(ids) + "\n")
PY
  export IDS_FILE="$scratch/ids.txt" USER_ID
  USER_ID=$(head -1 "$scratch/ids.txt")
}

workloads() { # label base...
  local label=$1; shift
  run "$label create-user" create-user.lua "$@"
  run "$label get-user-by-id" get-user.lua "$@"
  run "$label filter userName eq" query-username.lua "$@"
  run "$label PATCH replace" patch-user.lua "$@"
}

# Durable commits, as SQLite's synchronous=FULL: a throwaway cluster (pg_virtualenv) starts
# with fsync off, which no production server runs with.
psql "$POSTGRES_TEST_URL" -qAtc "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); PostgreSQL $(psql "$POSTGRES_TEST_URL" -qAtc 'SHOW server_version') (fsync $(psql "$POSTGRES_TEST_URL" -qAtc 'SHOW fsync')); ${duration}s per run, 16 connections; $users users preloaded"

# The seed: USERS users in a SQLite file, with the signing key every server shares.
mkdir -p "$scratch/seed"; chmod 700 "$scratch/seed"
target/release/examples/generate-users "$scratch/seed/scimgate.db" "$users" 2>/dev/null
export TOKEN USERS="$users"
TOKEN=$("$bin" token --data "$scratch/seed" --sub bench)
keys="$scratch/seed"

# SQLite: one instance on a copy of the seed.
cp -r "$scratch/seed" "$scratch/sqlite"
start "$scratch/sqlite" 18481 ""
user_ids http://127.0.0.1:18481
workloads "sqlite" http://127.0.0.1:18481
stop_all

# PostgreSQL: the seed copied in, one instance, then two.
url=$(new_database scimgate_bench)
"$bin" migrate --from "$scratch/seed" --to "$url" | tail -1
psql "$url" -qAtc "ANALYZE" >/dev/null
start "$scratch/pg-a" 18482 "$url"
user_ids http://127.0.0.1:18482
workloads "postgres, 1 instance" http://127.0.0.1:18482
start "$scratch/pg-b" 18483 "$url"
workloads "postgres, 2 instances" http://127.0.0.1:18482 http://127.0.0.1:18483
stop_all

if [[ "$big" -gt 0 ]]; then
  # The query benchmark at BIG users: generated into SQLite once (kept, as bench/query.sh
  # keeps it), copied to PostgreSQL, queried with 4 connections.
  seed="target/bench-query-$big"
  if [[ ! -f "$seed/loaded" ]]; then
    rm -rf "$seed"; mkdir -p "$seed"
    target/release/examples/generate-users "$seed/scimgate.db" "$big"
    touch "$seed/loaded"
  fi
  if [[ -n "${BIG_DATABASE:-}" ]]; then
    # A database a previous run (or `scimgate migrate`) filled from this seed: no copy.
    url="$BIG_DATABASE"
  else
    url=$(new_database scimgate_bench_big)
    start=$(date +%s)
    "$bin" migrate --from "$seed" --to "$url" | tail -1
    echo "copied $big users to PostgreSQL in $(( $(date +%s) - start )) s"
  fi
  psql "$url" -qAtc "ANALYZE" >/dev/null
  TOKEN=$("$bin" token --data "$seed" --sub bench)
  keys="$seed"
  export USERS="$big"
  start "$scratch/pg-big" 18484 "$url"
  wrk -t2 -c4 -d"${duration}s" --latency -s bench/query-username.lua http://127.0.0.1:18484 > "$results/postgres-big-filter.txt"
  summarise "postgres $big users, userName eq (4 conn)" "$results/postgres-big-filter.txt"
  wrk -t1 -c1 -d"${duration}s" --latency -s bench/query-username.lua http://127.0.0.1:18484 > "$results/postgres-big-filter-1.txt"
  summarise "postgres $big users, userName eq (1 conn)" "$results/postgres-big-filter-1.txt"
  rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/${servers[0]}/status")
  echo "postgres database: $(psql "$url" -qAtc "SELECT pg_size_pretty(pg_database_size(current_database()))"); server resident memory $((rss_kib / 1024)) MiB"
  stop_all
fi
