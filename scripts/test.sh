#!/usr/bin/env bash
# Every check CI runs, in order: formatting, lints, the Rust test suite
# (unit and integration tests against a real server on 127.0.0.1:0), then the
# schema lint with the pinned buf from package.json.
#
# Usage: scripts/test.sh        (CI=true adds --locked to every cargo command)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo_flags=()
if [[ "${CI:-}" == "true" ]]; then
  cargo_flags+=(--locked)
fi

current_step="setup"
step() {
  current_step="$*"
  printf '\n==> %s\n' "$*"
}
on_exit() {
  local status=$?
  rm -f "$test_log"
  if [[ $status -ne 0 ]]; then
    printf '\ntest.sh: FAILED during: %s (exit %d)\n' "$current_step" "$status" >&2
  fi
}
test_log="$(mktemp)"
trap on_exit EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy ${cargo_flags[@]+"${cargo_flags[@]}"} --all-targets -- -D warnings

step "cargo test --all-targets"
set +e
cargo test ${cargo_flags[@]+"${cargo_flags[@]}"} --all-targets 2>&1 | tee "$test_log"
test_status=${PIPESTATUS[0]}
set -e
# Totals over every test binary's "test result:" line.
read -r passed failed ignored < <(
  sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$test_log" |
    awk '{p += $1; f += $2; i += $3} END {print p + 0, f + 0, i + 0}'
)
printf '\ncargo test totals: %d passed, %d failed, %d ignored\n' "$passed" "$failed" "$ignored"
if [[ $test_status -ne 0 ]]; then
  exit "$test_status"
fi
if [[ $passed -eq 0 ]]; then
  echo "cargo test ran no test" >&2
  exit 1
fi

step "npm ci"
npm ci --no-audit --no-fund

step "buf lint"
npx buf lint

current_step="done"
printf '\nAll checks passed: fmt, clippy, buf lint, and\n'
printf 'Tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$ignored"
