#!/usr/bin/env bash
# Fuzzes the API with schemathesis against openapi.yaml and a real pisync-local: every
# check, positive and negative data, examples, coverage, fuzzing and stateful phases
# (openapi.yaml's links follow issued cursors). Bounded: a fixed seed, a fixed number
# of examples per operation, one worker. Two passes:
#   1. authentication on, an admin operator token: every operator route;
#   2. --no-auth: the device routes with arbitrary device ids (what a device token may
#      send is its own device's events; the hostile auth matrix in the cargo tests
#      covers who may call what), so the auth checks are off for this pass.
# scripts/schemathesis-baseline.json lists the accepted findings, each a rule no schema
# can say: a random `cursor` (any string to the schema) is refused on the paged routes
# (a cursor is valid only if PiSync issued it); a school whose `open` is not before its
# `close`, or whose `silent_after` is outside 60s–60d, is refused by PUT /schools/{id};
# an event dated before 2000 is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$(scripts/python-tools.sh)"
examples="${PISYNC_FUZZ_EXAMPLES:-400}"
cargo build -q -p pisync-local
bin=target/debug/pisync-local
work="$(mktemp -d)"
# Each runner's pid goes to a file: `start` runs in a command substitution (a
# subshell), so a shell array set there would be lost and the runners left running.
cleanup() {
  for pidfile in "$work"/*/pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

start() { # start NAME [FLAGS…]: prints the base URL
  local name="$1"; shift
  mkdir -p "$work/$name"
  "$bin" --addr 127.0.0.1:0 --data-dir "$work/$name" "$@" >"$work/$name/stdout" 2>"$work/$name/stderr" &
  echo "$!" >"$work/$name/pid"
  for _ in $(seq 1 100); do
    if [ -s "$work/$name/stdout" ]; then
      head -1 "$work/$name/stdout" | sed 's/^pisync-local listening on //'
      return 0
    fi
    sleep 0.1
  done
  echo "pisync-local did not start" >&2
  cat "$work/$name/stderr" >&2
  return 1
}

run_st() { # run_st EXAMPLES [OPTIONS…]
  local n="$1"; shift
  (cd "$work" && "$tools/st" run "$OLDPWD/openapi.yaml" --checks all --mode all \
    --seed 20261130 --max-examples "$n" --workers 1 --generation-database none \
    --no-color --baseline "$OLDPWD/scripts/schemathesis-baseline.json" ${PISYNC_FUZZ_BASELINE_UPDATE:+--baseline-update} "$@")
}

operators="$(start operators)"
admin="$("$bin" token operator --admin --data-dir "$work/operators")"
echo "== operator routes, authentication on ($operators)"
run_st "$examples" --url "$operators" -H "Authorization: Bearer $admin" --exclude-path-regex '^/sync-event'

devices="$(start devices --no-auth)"
echo "== device routes, --no-auth ($devices)"
# Two operations and no stateful phase: more examples each.
run_st "$((examples * 3))" --url "$devices" --include-path-regex '^/sync-event' \
  --exclude-checks ignored_auth,missing_required_header --generation-with-security-parameters false \
  --phases examples,coverage,fuzzing

for name in operators devices; do
  if grep -q -E "panicked|ERROR" "$work/$name/stderr"; then
    echo "the runner logged errors under fuzzing ($name):" >&2
    cat "$work/$name/stderr" >&2
    exit 1
  fi
done
