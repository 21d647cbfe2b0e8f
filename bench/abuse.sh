#!/usr/bin/env bash
# Load-and-abuse scenarios (issue 10) against the release binary: see bench/abuse.py.
#
#   bench/abuse.sh [--only NAME]... [--seconds N] [--keep]
#
# Prints a table (victim latency under each hostile load, the hostile status codes, peak
# RSS, database growth, whether the server survived) and writes bench/results/abuse.json.
# Exits nonzero only when a server died.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin scimgate
exec python3 bench/abuse.py target/release/scimgate "$@"
