#!/usr/bin/env bash
# Import and export at scale: `scimgate import` of N users (NDJSON, each with a name, two
# emails, a phone and an enterprise department; then a CSV of the same users with a groups
# column naming 20 groups), and `scimgate export` of them, each timed with its peak memory
# (GNU time's maximum resident set size). SQLite, a fresh data folder, nothing else
# running.
#
#   bench/import.sh [USERS]        (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
users=${1:-1000000}
command -v /usr/bin/time >/dev/null || apt-get install -y -q time >/dev/null
release_binary
work=target/bench-import
rm -rf "$work" && mkdir -p "$work"
python3 - "$users" "$work" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
with open(f"{work}/users.ndjson", "w") as out, open(f"{work}/users.csv", "w") as csv:
    csv.write("login,given,family,mail,phone,department,teams\n")
    for i in range(n):
        out.write(json.dumps({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ent],
            "id": f"f{i}", "userName": f"user{i}@example.com",
            "name": {"givenName": f"Given{i}", "familyName": f"Family{i}"},
            "emails": [{"value": f"user{i}@example.com", "type": "work", "primary": True},
                       {"value": f"u{i}@home.example", "type": "home"}],
            "phoneNumbers": [{"value": f"+1 555 {i:07d}", "type": "work"}],
            ent: {"department": f"Dept{i % 50}"},
        }) + "\n")
        csv.write(f"csv{i}@example.com,Given{i},Family{i},csv{i}@example.com,+1 555 {i:07d},Dept{i % 50},Team{i % 20}\n")
PY
ls -l "$work"/users.*
data=$work/data
"$bin" token --data "$data" --init >/dev/null
run() { # name, then the command
  local name=$1; shift
  /usr/bin/time -f "%e s elapsed, %M KiB peak RSS, %U s user, %S s system" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || {
    cat "$work/$name.err" >&2; return 1; }
  printf '%-8s %s\n         %s\n' "$name" "$(tail -n1 "$work/$name.out")" "$(cat "$work/$name.time")"
}
run ndjson "$bin" import "$work/users.ndjson" --data "$data"
run csv "$bin" import "$work/users.csv" --data "$data" --map login=userName --map given=name.givenName \
  --map family=name.familyName --map 'mail=emails[type eq "work"].value' \
  --map 'phone=phoneNumbers[type eq "work"].value' \
  --map department=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department --map teams=groups
run export "$bin" export --data "$data" --format ndjson --output "$work/export.ndjson"
tail -n1 "$work/export.err"
ls -l "$data"/scimgate.db "$work/export.ndjson"
