#!/usr/bin/env bash
# The data team's export, end to end: seeds an embedded store with known events
# (local/examples/export_sample.rs), exports it with the real command
# (`pisync-local export`), and runs the Athena queries docs/analytics.md documents on
# the files in DuckDB, comparing their answers with exact ones
# (scripts/export-queries.py). Uses .venv/ (scripts/python-tools.sh installs DuckDB).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tools="$(scripts/python-tools.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --quiet -p pisync-local --bin pisync-local --example export_sample
target/debug/examples/export_sample "$work/data" 2000
target/debug/pisync-local export --data-dir "$work/data" --out "$work/export"
"$tools/python" scripts/export-queries.py "$work/export" "$work/data/expected.json"
