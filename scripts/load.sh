#!/usr/bin/env bash
# Load test of pisync-local on loopback: unique POST /sync-event from many simulated
# devices (about one in ten failed), then a read mix, then backlogs of 100 events
# through POST /sync-events (every acknowledged event counted in the store afterwards).
# Installs wrk from Debian if missing.
#
#   scripts/load.sh [SECONDS] [CONNECTIONS]      (defaults: 20 s, 64 connections)
#   PISYNC_LOCAL_BIN=/path/to/pisync-local scripts/load.sh …   (that build, not this tree's)
#
# Prints requests/s, p50 and p99 latency and the non-2xx count for each phase. Not part
# of the test suite: figures go to docs/performance.md.
#
# The POST phase also reports the runner's CPU time per created event (user + system,
# from /proc, taken from the phase's start until failure detection has settled), so it
# includes detection's share.
#
#   PISYNC_LOAD_PHASES="post reads batches"   the phases to run (default: all three)
#
# Authentication is on, as by default: each simulated device gets its own token
# (issued through the API before the timed phases) and posts with it; reads use a
# read operator token. PISYNC_LOAD_NO_AUTH=1 runs the runner with --no-auth instead,
# to measure what authentication costs.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
connections="${2:-64}"

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
# PISYNC_LOCAL_BIN runs another build (an A/B against an earlier commit's binary).
bin="${PISYNC_LOCAL_BIN:-target/release/pisync-local}"
[ -n "${PISYNC_LOCAL_BIN:-}" ] || cargo build --release -p pisync-local
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
auth_flag=()
[ "${PISYNC_LOAD_NO_AUTH:-}" = "1" ] && auth_flag=(--no-auth)
RUST_LOG=warn "$bin" --addr "127.0.0.1:$port" --data-dir "$data" "${auth_flag[@]}" >/dev/null &
runner=$!
trap 'kill $runner 2>/dev/null; wait $runner 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/devices/repeated-failures" && break; sleep 0.1; done

run_id=$(date +%s)
tokens="$data/tokens.txt"
if [ "${PISYNC_LOAD_NO_AUTH:-}" = "1" ]; then
  echo "== authentication off (--no-auth)"
  : >"$tokens"
else
  admin="$("$bin" token operator --admin --data-dir "$data")"
  read_token="$("$bin" token operator --data-dir "$data")"
  echo "read $read_token" >"$tokens"
  # One token per simulated device (2 wrk threads x 5,000), not timed.
  python3 scripts/load/issue-tokens.py "127.0.0.1:$port" "$admin" "$run_id" 2 5000 >>"$tokens"
  python3 scripts/load/issue-tokens.py "127.0.0.1:$port" "$admin" "$run_id" 2 500 batch >>"$tokens"
  echo "== authentication on: $(($(wc -l <"$tokens") - 1)) device tokens issued"
fi
phases=" ${PISYNC_LOAD_PHASES:-post reads batches} "
# The runner's CPU time so far (user + system), in microseconds.
cpu_us() {
  awk -v tck="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1e6 / tck }' "/proc/$runner/stat"
}
if [[ $phases == *" post "* ]]; then
echo "== POST /sync-event: $connections connections, ${seconds}s (unique events, ~10% failed)"
cpu_before="$(cpu_us)"
post_out="$(wrk -t2 -c"$connections" -d"${seconds}s" --timeout 5s -s scripts/load/post-events.lua "http://127.0.0.1:$port" -- "$run_id" "$tokens")"
grep -E '^(requests/s|p50|p99|201 created|non-2xx|socket errors)' <<<"$post_out"
# Let failure detection drain the write phase's backlog (so the CPU figure holds its
# share, and the read phase measures reads).
sleep "${PISYNC_LOAD_SETTLE_SECONDS:-20}"
created="$(awk '/^201 created/ { print $3 }' <<<"$post_out")"
echo "server CPU per event $(( ($(cpu_us) - cpu_before) / (created > 0 ? created : 1) )) us (incl. detection)"
fi

if [[ $phases == *" reads "* ]]; then
echo "== read mix: 80% history pages, 20% repeated-failures pages"
wrk -t2 -c"$connections" -d"${seconds}s" --timeout 5s -s scripts/load/read-mix.lua "http://127.0.0.1:$port" -- "$run_id" "$tokens" \
  | grep -E '^(requests/s|p50|p99|non-2xx|socket errors)'
du -sh "$data" | sed 's/^/store size after the run: /'
fi

if [[ $phases == *" batches "* ]]; then
sleep "${PISYNC_LOAD_SETTLE_SECONDS:-20}"
echo "== POST /sync-events: batches of 100 events, $connections connections"
wrk -t2 -c"$connections" -d"${seconds}s" --timeout 10s -s scripts/load/post-batches.lua "http://127.0.0.1:$port" -- "$run_id" "$tokens" \
  | grep -E '^(requests/s|events/s|p50|p99|created|non-2xx|socket errors)'
# Every acknowledged event is in the store: count them in the database itself.
python3 - "$data/pisync.db" "$run_id" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
n = db.execute("SELECT COUNT(*) FROM events WHERE device_id LIKE ?", (f"batch-{sys.argv[2]}-%",)).fetchone()[0]
print(f"stored backlog events: {n}")
PY
fi
