#!/usr/bin/env bash
# Installs the Python-distributed tools PiSync's checks use into .venv/:
# cargo-lambda (with Zig), aws-sam-cli, cfn-lint, openapi-spec-validator, DuckDB, and checkov
# and schemathesis (each in its own environment inside .venv/, as their dependencies
# pin versions SAM's do not accept). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Pinned, so a release of any of them cannot change what the checks (or a deploy) do.
want=(cargo-lambda==1.9.2 aws-sam-cli==1.170.0 cfn-lint==1.58.0 openapi-spec-validator==0.9.0)
missing=()
for tool in cargo-lambda sam cfn-lint openapi-spec-validator; do
  [ -x "$venv/bin/$tool" ] || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${want[@]}"
fi
# DuckDB runs the documented Athena queries on a local export (scripts/export-check.sh).
if ! "$venv/bin/python" -c "import duckdb" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check duckdb==2.0.1
fi
if [ ! -x "$venv/bin/st" ]; then
  # schemathesis in its own environment too (its pins are its own).
  python3 -m venv "$venv/schemathesis"
  "$venv/schemathesis/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
  ln -sf "$venv/schemathesis/bin/st" "$venv/bin/st"
fi
if [ ! -x "$venv/bin/checkov" ]; then
  python3 -m venv "$venv/checkov"
  "$venv/checkov/bin/pip" install --quiet --disable-pip-version-check checkov==3.3.30
  ln -sf "$venv/checkov/bin/checkov" "$venv/bin/checkov"
fi
echo "$venv/bin"
