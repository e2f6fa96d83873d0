#!/usr/bin/env bash
# Cold start, first-invocation latency, warm latency and peak RSS of every function's
# release bootstrap, next to a hello-world lambda_runtime binary, all built the same way
# (cargo lambda) and measured by the same Runtime API emulator (local/examples/coldstart.rs)
# in the same run. Functions talk to DynamoDB Local.
#
# Cold starts are measured in ROUNDS rounds (default 21); each round starts every binary
# once, in a rotating order, so a noisy moment hits all of them alike. Reported: median init, median first
# invocation, and the median over rounds of init / hello-world init from that round.
# Warm latency and peak RSS come from one run of INVOCATIONS invocations (default 1000).
#
#   scripts/coldstart.sh [ROUNDS] [INVOCATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-21}"
invocations="${2:-1000}"
tools="$(scripts/python-tools.sh)"

# deliver-webhooks is left out: it reads its secret from Secrets Manager at init, which
# has no local stand-in here (its start is the same code path as the others' plus that).
PATH="$tools:$PATH" "$tools/cargo-lambda" lambda build --release --x86-64 \
  -p record-sync-event -p get-sync-history -p list-repeated-failures -p detect-failures \
  -p issue-device-credentials -p revoke-device-credentials -p record-sync-events \
  -p get-device -p list-devices -p fleet-summary -p serve-dashboard -p watch-devices >/dev/null
PATH="$tools:$PATH" "$tools/cargo-lambda" lambda build --release --x86-64 -p pisync-local --example hello_lambda >/dev/null
cargo build --release -p pisync-local --example coldstart --example provision_example_token --bin pisync-local >/dev/null

endpoint="$(scripts/dynamodb-local.sh start)"
trap 'scripts/dynamodb-local.sh stop' EXIT
data="$(mktemp -d)"
# The runner creates the table (same schema as template.yaml) on start.
target/release/pisync-local --addr 127.0.0.1:0 --data-dir "$data" --dynamodb-endpoint "$endpoint" --table coldstart >/dev/null 2>&1 &
runner=$!
sleep 3
kill "$runner"; wait "$runner" 2>/dev/null || true
# The example event's device token is current, so record-sync-event takes the
# authorized path (signature, credential read, then the write).
target/release/examples/provision_example_token "$endpoint" coldstart-credentials >/dev/null

# The functions trust the Amazon roots compiled in. With TLS_TRUST_ROOTS=system (pass it
# to this script to compare) they load the system store: Lambda's provided.al2023 image
# keeps it in one bundle file, so point the TLS stack at this machine's bundle rather
# than a directory of ~300 files.
bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$bundle" ] || bundle=/etc/pki/tls/certs/ca-bundle.crt
env=("SSL_CERT_FILE=$bundle" TABLE_NAME=coldstart "AWS_ENDPOINT_URL_DYNAMODB=$endpoint" "AWS_ENDPOINT_URL=$endpoint"
     CURSOR_SIGNING_KEY=coldstart-benchmark-key-at-least-32-chars
     # In AWS both come from Secrets Manager at init (one GetSecretValue round trip,
     # not measurable here); locally the keys come from a file.
     TOKEN_SIGNING_KEYS_FILE=events/dev-signing-keys.json CREDENTIALS_TABLE_NAME=coldstart-credentials
     ALERT_TOPIC_ARN=arn:aws:sns:us-east-1:000000000000:pisync-alerts
     "TLS_TRUST_ROOTS=${TLS_TRUST_ROOTS:-aws}")
binaries=(
  "hello-world target/lambda/hello_lambda/bootstrap events/detect-failures/recovery.json"
  "record-sync-event target/lambda/record-sync-event/bootstrap events/record-sync-event/new-event.json"
  "get-sync-history target/lambda/get-sync-history/bootstrap events/get-sync-history/newest-first.json"
  "list-repeated-failures target/lambda/list-repeated-failures/bootstrap events/list-repeated-failures/first-page.json"
  "detect-failures target/lambda/detect-failures/bootstrap events/detect-failures/recovery.json"
  "record-sync-events target/lambda/record-sync-events/bootstrap events/record-sync-events/backlog.json"
  "issue-device-credentials target/lambda/issue-device-credentials/bootstrap events/issue-device-credentials/admin.json"
  "revoke-device-credentials target/lambda/revoke-device-credentials/bootstrap events/revoke-device-credentials/admin.json"
  "get-device target/lambda/get-device/bootstrap events/get-device/unknown-device.json"
  "list-devices target/lambda/list-devices/bootstrap events/list-devices/failing.json"
  "fleet-summary target/lambda/fleet-summary/bootstrap events/fleet-summary/fourteen-days.json"
  "serve-dashboard target/lambda/serve-dashboard/bootstrap events/serve-dashboard/page.json"
  "watch-devices target/lambda/watch-devices/bootstrap events/watch-devices/every-minute.json"
)
run() { # name binary event invocations
  printf '%s ' "$1"
  target/release/examples/coldstart "$2" "$3" "$4" "${env[@]}"
}
results="$data/results"
count=${#binaries[@]}
for round in $(seq 1 "$rounds"); do
  for i in $(seq 0 $((count - 1))); do
    # Rotate the order each round, and let DynamoDB Local (same two cores) settle after
    # the previous binary's invocations, so neither position nor its JVM favours anyone.
    # shellcheck disable=SC2086
    set -- ${binaries[$(((i + round) % count))]}
    sleep 0.3
    run "$1" "$2" "$3" 3 | sed "s/^/cold $round /" >>"$results"
  done
done
for b in "${binaries[@]}"; do
  # shellcheck disable=SC2086
  set -- $b
  run "$1" "$2" "$3" "$invocations" | sed "s/^/warm 0 /" >>"$results"
done
python3 - "$results" <<'PY'
import collections, json, statistics, sys
cold, warm = collections.defaultdict(dict), {}
for line in open(sys.argv[1]):
    phase, rnd, name, row = line.split(" ", 3)
    row = json.loads(row)
    if phase == "cold":
        cold[name][rnd] = row
    else:
        warm[name] = row
hello = cold["hello-world"]
print("| binary | init ms (median) | init / hello-world (median of rounds) | first invocation ms | warm p50 ms | peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- |")
for name in warm:
    rounds = cold[name]
    med = lambda k: statistics.median(r[k] for r in rounds.values())
    ratio = statistics.median(r["init_ms"] / hello[k]["init_ms"] for k, r in rounds.items())
    print("| %s | %.2f | %.2f | %.2f | %.3f | %.1f |" % (
        name, med("init_ms"), ratio, med("first_invoke_ms"),
        warm[name]["warm_p50_ms"], warm[name]["peak_rss_kib"] / 1024))
print("\n%d rounds; warm figures over %d invocations" % (len(hello), warm["hello-world"]["invocations"]))
PY
echo
echo "| function | bootstrap bytes | zipped bytes |"
echo "| --- | --- | --- |"
PATH="$tools:$PATH" "$tools/cargo-lambda" lambda build --release --x86-64 -p deliver-webhooks >/dev/null
for dir in functions/*/; do
  f="$(basename "$dir")"
  zip_file="$data/$f.zip"
  (cd "target/lambda/$f" && zip -q -9 "$zip_file" bootstrap)
  echo "| $f | $(stat -c %s "target/lambda/$f/bootstrap") | $(stat -c %s "$zip_file") |"
done
rm -rf "$data"
