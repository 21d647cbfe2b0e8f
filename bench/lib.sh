# Shared by the bench scripts.

# The benchmarks measure capacity from one client with one token, far above any IdP's
# rate, so the rate limiter is off; bench/security.sh measures what it costs.
export SCIMGATE_RATE_LIMIT__ENABLED=false

# Waits (up to 30 s, polling every 10 ms) until the server on PORT answers /readyz.
wait_ready() { # port
  for _ in $(seq 3000); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    sleep 0.01
  done
  echo "bench: the server on port $1 did not become ready" >&2
  return 1
}

# wrk's summary as one line.
summarise() { # name file
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' "$2")
  p50=$(awk '$1 == "50%" {print $2}' "$2")
  p99=$(awk '$1 == "99%" {print $2}' "$2")
  errors=$(awk '/Non-2xx/ {print $5}' "$2")
  printf '%-32s %10s req/s   p50 %9s   p99 %9s   non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "${errors:-0}"
  if [[ -n "$errors" ]]; then echo "bench: $1 had non-2xx answers" >&2; return 1; fi
}

# The binary under test: BENCH_BIN when set (another build, for a side-by-side run), else
# a release build of this tree. Sets `bin`.
release_binary() {
  if [[ -n "${BENCH_BIN:-}" ]]; then
    bin=$BENCH_BIN
  else
    cargo build --release --locked --bin scimgate
    bin=target/release/scimgate
  fi
}
