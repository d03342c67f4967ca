#!/usr/bin/env bash
# TypeScript SDK: install the pinned toolchain (package-lock.json), lint,
# build, then run every test (unit, golden vectors, conformance scenarios,
# reconnect, client API, publish retries, package layout) against the real
# server binary given by SWITCHBOARD_BIN (default
# <repo>/target/debug/switchboard); the publish-retry tests also start a real
# redis-server from PATH (scripts/test.sh installs it).
# Ends with the line "typescript tests: N passed, N failed, N skipped".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
repo="$(cd ../.. && pwd)"
export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$repo/target/debug/switchboard}"
if [[ ! -x "$SWITCHBOARD_BIN" ]]; then
  echo "server binary not found: $SWITCHBOARD_BIN (build it with cargo build, or set SWITCHBOARD_BIN)" >&2
  exit 1
fi

echo "--- npm ci"
npm ci --no-audit --no-fund

echo "--- lint: tsc --noEmit (strict, src and tests)"
npx tsc -p tsconfig.test.json --noEmit
echo "--- lint: eslint"
npx eslint --max-warnings 0 .

echo "--- build"
rm -rf dist build
npx tsc -p tsconfig.json
npx tsc -p tsconfig.test.json

echo "--- tests"
status=0
# No --test-force-exit: it ends each file's process with output still
# buffered, and the reports of its last tests were lost. A file that does
# not exit on its own fails the suite after 10 minutes instead of hanging.
timeout 600 node --test --test-timeout=90000 --test-reporter=spec \
  build/test/*.test.js 2>&1 | tee build/results.txt || status=$?

# The spec reporter ends with "ℹ pass N", "ℹ fail N", ... summary lines.
count() {
  local n
  n="$(grep -E "^ℹ $1 [0-9]+$" build/results.txt | tail -n 1 | awk '{print $3}')" || true
  echo "${n:-0}"
}
passed="$(count pass)"
failed="$(count fail)"
cancelled="$(count cancelled)"
skipped="$(count skipped)"
todo="$(count todo)"
failed=$((failed + cancelled))
if [[ "$status" -ne 0 && "$failed" -eq 0 ]]; then
  failed=1 # the runner failed outside any test (e.g. a file did not load)
fi
echo "typescript tests: ${passed} passed, ${failed} failed, $((skipped + todo)) skipped"
exit "$status"
