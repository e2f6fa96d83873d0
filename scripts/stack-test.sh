#!/usr/bin/env bash
# PiSync as deployed: template.yaml and the release Lambda zips on an AWS emulator
# (ministack, pure Python, no Docker), driven end to end by scripts/stack/e2e.py.
#
#   scripts/stack-test.sh            # builds the zips if target/lambda lacks them
#
# Installs the emulator into .venv/ministack (pinned), builds every function as a zip
# for this machine (`cargo lambda build --release --x86-64 --output-format zip`; the
# suite's own build step makes the same ones, so this reuses it), starts the emulator
# on a free port, deploys through CloudFormation, runs the checks and stops everything
# it started. What the emulator does not do is in docs/deployment.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

venv="$root/.venv/ministack"
# Pinned, so an emulator release cannot change what the checks prove. cryptography
# verifies RS256 tokens (the JWT authorizer) and makes the webhook receiver's CA.
want=(ministack==1.5.33 aws-sam-translator==1.115.0 boto3==1.43.106 botocore==1.43.106 cryptography==50.0.2)
if [ ! -x "$venv/bin/ministack" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx "ministack==1.5.33"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${want[@]}"
fi

packages=()
missing=0
for dir in functions/*/; do
  name="$(basename "$dir")"
  packages+=(-p "$name")
  [ -f "target/lambda/$name/bootstrap.zip" ] || missing=1
done
if [ "$missing" = 1 ]; then
  tools="$(scripts/python-tools.sh)"
  PATH="$tools:$PATH" "$tools/cargo-lambda" lambda build --release --x86-64 --output-format zip "${packages[@]}"
fi

work="$(mktemp -d)"
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
endpoint="http://127.0.0.1:$port"
# The emulator runs each function as a process of its own group; stopping the group
# stops them too. AWS_ENDPOINT_URL is handed on to the functions: their SDK calls go
# to the emulator instead of the regional endpoints (the only setting they get that a
# deployment does not give them).
AWS_ENDPOINT_URL="$endpoint" GATEWAY_PORT="$port" BIND_HOST=127.0.0.1 TMPDIR="$work" \
  setsid "$venv/bin/ministack" >"$work/ministack.log" 2>&1 &
emulator=$!
stop() {
  kill -- "-$emulator" 2>/dev/null || true
  wait "$emulator" 2>/dev/null || true
  if [ "${PISYNC_STACK_KEEP_LOG:-}" = "1" ]; then
    echo "emulator log: $work/ministack.log"
  else
    rm -rf "$work"
  fi
}
trap stop EXIT

for _ in $(seq 1 100); do
  if curl -fsS "$endpoint/_ministack/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$emulator" 2>/dev/null; then
    cat "$work/ministack.log" >&2
    echo "the emulator did not start" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$endpoint/_ministack/health" >/dev/null

if ! "$venv/bin/python" scripts/stack/e2e.py "$endpoint" "$root/target/lambda"; then
  echo "--- emulator log (last 80 lines)" >&2
  tail -n 80 "$work/ministack.log" >&2
  exit 1
fi
