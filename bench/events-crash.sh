#!/usr/bin/env bash
# The change feed's crash test, long: writers running, the real server killed with SIGKILL
# at a random moment, restarted, ROUNDS times (default 50); then every acknowledged write
# must have its event at the receiver, in order per resource, none for an uncommitted one.
# (`scripts/test` runs the same test with 5 rounds.)
#
#   bench/events-crash.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS_CRASH_ROUNDS="${1:-50}" cargo test --release --locked --test binary \
  no_acknowledged_write_goes_without_its_event_across_hard_kills -- --nocapture
