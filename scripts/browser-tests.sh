#!/usr/bin/env bash
# The dashboard's browser tests: a real headless Chromium (Debian's `chromium`) driven by
# Playwright (playwright-core, which downloads no browser) against a real pisync-local.
# The tests start their own runner and write screenshots to target/screenshots/
# (PISYNC_SCREENSHOT_DIR=docs/screenshots refreshes the README's).
#
# A missing Chromium is a failure, never a skip: .ci/run installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium="${PISYNC_CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$chromium" ] || [ ! -x "$chromium" ]; then
  echo "chromium not found: apt-get install chromium (or set PISYNC_CHROMIUM)" >&2
  exit 1
fi
export PISYNC_CHROMIUM="$chromium"

cargo build -q -p pisync-local
export PISYNC_LOCAL_BIN="$PWD/target/debug/pisync-local"

cd functions/serve-dashboard/tests/browser
npm ci --no-audit --no-fund --silent
npm test
