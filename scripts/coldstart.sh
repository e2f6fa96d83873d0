#!/usr/bin/env bash
# Cold start, first-invocation latency, warm latency and peak RSS of every function's
# release bootstrap, next to a hello-world lambda_runtime binary, all measured by the
# same Runtime API emulator (local/examples/coldstart.rs) in the same run.
# Functions talk to DynamoDB Local. Prints medians of RUNS runs (default 5).
#
#   scripts/coldstart.sh [RUNS] [INVOCATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
invocations="${2:-1000}"
tools="$(scripts/python-tools.sh)"

PATH="$tools:$PATH" "$tools/cargo-lambda" lambda build --release --x86-64 \
  -p record-sync-event -p get-sync-history -p list-repeated-failures -p detect-failures >/dev/null
cargo build --release -p pisync-local --example coldstart --example hello_lambda --bin pisync-local >/dev/null

endpoint="$(scripts/dynamodb-local.sh start)"
trap 'scripts/dynamodb-local.sh stop' EXIT
data="$(mktemp -d)"
# The runner creates the table (same schema as template.yaml) on start.
target/release/pisync-local --addr 127.0.0.1:0 --data-dir "$data" --dynamodb-endpoint "$endpoint" --table coldstart >/dev/null 2>&1 &
runner=$!
sleep 3
kill "$runner"; wait "$runner" 2>/dev/null || true

# Lambda's provided.al2023 image keeps its CA roots in one bundle file; point the TLS
# stack at this machine's bundle so it does not scan a directory of ~300 files instead.
bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$bundle" ] || bundle=/etc/pki/tls/certs/ca-bundle.crt
env=("SSL_CERT_FILE=$bundle" TABLE_NAME=coldstart "AWS_ENDPOINT_URL_DYNAMODB=$endpoint" "AWS_ENDPOINT_URL=$endpoint"
     CURSOR_SIGNING_KEY=coldstart-benchmark-key-at-least-32-chars
     ALERT_TOPIC_ARN=arn:aws:sns:us-east-1:000000000000:pisync-alerts)
measure() { # name binary event
  for _ in $(seq 1 "$runs"); do
    target/release/examples/coldstart "$2" "$3" "$invocations" "${env[@]}"
  done | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
med = lambda k: statistics.median(r[k] for r in rows if r[k] is not None)
rss = max(r["peak_rss_kib"] for r in rows) / 1024
print("| %s | %.2f | %.2f | %.3f | %.1f |" % (sys.argv[1], med("init_ms"), med("first_invoke_ms"), med("warm_p50_ms"), rss))
' "$1"
}
echo "| binary | init ms (median) | first invocation ms | warm p50 ms | peak RSS MiB |"
echo "| --- | --- | --- | --- | --- |"
measure hello-world target/release/examples/hello_lambda events/detect-failures/recovery.json
measure record-sync-event target/lambda/record-sync-event/bootstrap events/record-sync-event/new-event.json
measure get-sync-history target/lambda/get-sync-history/bootstrap events/get-sync-history/newest-first.json
measure list-repeated-failures target/lambda/list-repeated-failures/bootstrap events/list-repeated-failures/first-page.json
measure detect-failures target/lambda/detect-failures/bootstrap events/detect-failures/recovery.json

echo
echo "| function | bootstrap bytes | zipped bytes |"
echo "| --- | --- | --- |"
for f in record-sync-event get-sync-history list-repeated-failures detect-failures; do
  zip_file="$data/$f.zip"
  (cd "target/lambda/$f" && zip -q -9 "$zip_file" bootstrap)
  echo "| $f | $(stat -c %s "target/lambda/$f/bootstrap") | $(stat -c %s "$zip_file") |"
done
rm -rf "$data"
