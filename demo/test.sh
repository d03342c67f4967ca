#!/usr/bin/env bash
# Demo page: install the pinned tools (package-lock.json), type-check, build
# dist/ (in CI, fail when the committed dist/ differs from the fresh build),
# install Debian's chromium when it is missing, then run the browser test
# against the real server binary given by SWITCHBOARD_BIN (default
# <repo>/target/debug/switchboard).
# Ends with the line "demo tests: N passed, N failed, N skipped".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
repo="$(cd .. && pwd)"
export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$repo/target/debug/switchboard}"
if [[ ! -x "$SWITCHBOARD_BIN" ]]; then
  echo "server binary not found: $SWITCHBOARD_BIN (build it with cargo build, or set SWITCHBOARD_BIN)" >&2
  exit 1
fi

echo "--- npm ci"
npm ci --no-audit --no-fund

echo "--- typecheck"
npx tsc -p tsconfig.json --noEmit

echo "--- build"
node build.mjs
if [[ "${CI:-}" == "true" ]]; then
  if ! git diff --exit-code --stat -- dist; then
    echo "demo/dist differs from a fresh build (files above): run \`npm run build\` in demo/ and commit dist/" >&2
    exit 1
  fi
  if [[ -n "$(git ls-files --others --exclude-standard -- dist)" ]]; then
    echo "demo/dist has files that are not committed: run \`npm run build\` in demo/ and commit dist/" >&2
    exit 1
  fi
fi

if [[ ! -x /usr/bin/chromium ]]; then
  echo "--- install chromium (apt-get)"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
fi

echo "--- tests"
mkdir -p test-results
status=0
# No --test-force-exit: it can end the process with the last reports still
# buffered. A run that does not exit on its own fails after 10 minutes.
timeout 600 node --test --test-timeout=120000 --test-reporter=spec \
  test/*.test.mjs 2>&1 | tee test-results/results.txt || status=$?

# The spec reporter ends with "ℹ pass N", "ℹ fail N", ... summary lines.
count() {
  local n
  n="$(grep -E "^ℹ $1 [0-9]+$" test-results/results.txt | tail -n 1 | awk '{print $3}')" || true
  echo "${n:-0}"
}
passed="$(count pass)"
failed="$(count fail)"
cancelled="$(count cancelled)"
skipped="$(count skipped)"
todo="$(count todo)"
failed=$((failed + cancelled))
if [[ "$status" -ne 0 && "$failed" -eq 0 ]]; then
  failed=1 # the runner failed outside any test (e.g. the file did not load)
fi
echo "demo tests: ${passed} passed, ${failed} failed, $((skipped + todo)) skipped"
exit "$status"
