#!/usr/bin/env bash
# Fetches and runs Amazon's DynamoDB Local (bundled in the npm package
# amplify-dynamodb-simulator) for tests and CI. Needs npm and Java 17.
#
#   scripts/dynamodb-local.sh fetch          # download once into .cache/
#   scripts/dynamodb-local.sh start [PORT]   # start in memory; prints the endpoint URL
#   scripts/dynamodb-local.sh stop           # stop the instance started above
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${PISYNC_CACHE:-$root/.cache}"
pkg="amplify-dynamodb-simulator@2.9.30"
dir="$cache/dynamodb-local"
jar="$dir/package/emulator/DynamoDBLocal.jar"
state="$cache/dynamodb-local.run"

fetch() {
  if [ -f "$jar" ]; then return 0; fi
  mkdir -p "$dir"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$tmp"/amplify-dynamodb-simulator-*.tgz -C "$dir"
  rm -rf "$tmp"
  [ -f "$jar" ] || { echo "DynamoDB Local jar missing after npm pack of $pkg" >&2; exit 1; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  fetch
  port="${1:-$(free_port)}"
  mkdir -p "$cache"
  lib="$dir/package/emulator/DynamoDBLocal_lib"
  nohup java -Xmx1g -Djava.library.path="$lib" -jar "$jar" -inMemory -port "$port" \
    >"$cache/dynamodb-local.log" 2>&1 &
  pid=$!
  echo "$pid $port" >"$state"
  # Ready when it answers HTTP at all (any status): a 400 to a bare GET is fine.
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "DynamoDB Local exited during start-up:" >&2
      cat "$cache/dynamodb-local.log" >&2
      exit 1
    fi
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.5
  done
  echo "DynamoDB Local did not answer on port $port within 60 s" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

stop() {
  [ -f "$state" ] || return 0
  read -r pid _ <"$state"
  kill "$pid" 2>/dev/null || true
  rm -f "$state"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start "${2:-}" ;;
  stop) stop ;;
  *) echo "usage: $0 fetch|start [PORT]|stop" >&2; exit 2 ;;
esac
