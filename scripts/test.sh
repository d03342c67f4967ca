#!/usr/bin/env bash
# Every check CI runs, in order:
#   0. system packages the tests need: redis-server (multi-node tests start
#      their own on free loopback ports), installed with apt-get if missing;
#   1. Rust: formatting, clippy, and the workspace's tests (the server's unit
#      and integration tests, the golden vectors and the reference scenario
#      runner, all against real servers on 127.0.0.1:0);
#   2. schemas: regenerate every stub and vector and fail on any difference,
#      buf lint, and buf breaking against the committed v1 baseline images
#      (conformance/baseline/), including a check that it refuses a mutant;
#   3. SDKs: each client's own test.sh (it installs its pinned dependencies,
#      lints, and runs vectors, scenarios and reconnect tests against the
#      server binary built here), then demo/test.sh (the demo page in
#      headless Chromium, which it installs with apt-get when missing);
#   4. fuzzing: each cargo-fuzz target for FUZZ_SECONDS (default 60).
#
# Usage: scripts/test.sh        (CI=true adds --locked to every cargo command
#                                and requires a clean git tree after generation)
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

passed=0 failed=0 skipped=0
# Adds "<name> tests: N passed, N failed, N skipped" from a suite's output.
count_suite() {
  local line
  line="$(grep -E "^$1 tests: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped" "$test_log" | tail -n 1)"
  if [[ -z "$line" ]]; then
    echo "$1 suite printed no totals line" >&2
    return 1
  fi
  read -r p f s < <(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped.*/\1 \2 \3/' <<<"$line")
  if [[ $p -eq 0 ]]; then
    echo "$1 suite ran no test" >&2
    return 1
  fi
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

# Installs Debian packages whose commands are missing.
need_packages() {
  local missing=()
  while [[ $# -gt 0 ]]; do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    local sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
  fi
}

step "system packages (redis-server)"
need_packages redis-server redis-server
redis-server --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy ${cargo_flags[@]+"${cargo_flags[@]}"} --workspace --all-targets -- -D warnings

step "cargo test --workspace --all-targets"
set +e
cargo test ${cargo_flags[@]+"${cargo_flags[@]}"} --workspace --all-targets 2>&1 | tee "$test_log"
test_status=${PIPESTATUS[0]}
set -e
# Totals over every test binary's "test result:" line.
read -r p f s < <(
  sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$test_log" |
    awk '{p += $1; f += $2; i += $3} END {print p + 0, f + 0, i + 0}'
)
printf '\nrust tests: %d passed, %d failed, %d skipped\n' "$p" "$f" "$s"
if [[ $test_status -ne 0 ]]; then
  exit "$test_status"
fi
if [[ $p -eq 0 ]]; then
  echo "cargo test ran no test" >&2
  exit 1
fi
passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))

step "regenerate stubs and vectors; nothing may change"
# Outside CI the tree may hold work in progress, so compare the tree's state
# before and after instead of requiring it to be clean.
tree_state() {
  git status --porcelain=v1 --untracked-files=all
  git ls-files --modified --others --exclude-standard -z | xargs -0 -r sha1sum 2>/dev/null || true
}
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  before="$(tree_state)"
  if [[ "${CI:-}" == "true" && -n "$before" ]]; then
    printf 'the tree is not clean before generation:\n%s\n' "$before" >&2
    exit 1
  fi
  scripts/generate.sh
  after="$(tree_state)"
  if [[ "$before" != "$after" ]]; then
    echo "generated code is stale; run scripts/generate.sh and commit the result:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    exit 1
  fi
else
  echo "not a git checkout: cannot compare generated code" >&2
  exit 1
fi

step "buf lint"
npx buf lint

step "buf breaking against the released v1 schema"
# The baseline is a committed image of each module as released
# (conformance/baseline/); every commit is compared with it, so no sequence
# of commits can break v1. Adding to the schema is compatible and leaves the
# baseline as it is.
npx buf breaking proto --against conformance/baseline/switchboard-v1.binpb
npx buf breaking examples/proto --against conformance/baseline/chat-v1.binpb
echo "no breaking change against the v1 baseline"
# The check must be able to fail: a copy of the tree with a field removed
# from errors.proto is refused.
mutant="$(mktemp -d)"
cp -r buf.yaml proto examples "$mutant/"
sed -i '/uint32 retry_after_ms = 4;/d' "$mutant/proto/switchboard/v1/errors.proto"
if (cd "$mutant" && npx --prefix "$OLDPWD" buf breaking proto \
  --against "$OLDPWD/conformance/baseline/switchboard-v1.binpb") >"$mutant/out" 2>&1; then
  echo "buf breaking accepted a removed field" >&2
  exit 1
fi
grep -q 'retry_after_ms' "$mutant/out" || {
  echo "buf breaking failed for another reason:" >&2
  cat "$mutant/out" >&2
  exit 1
}
echo "a removed field is refused: $(head -n 1 "$mutant/out")"
rm -rf "$mutant"

step "build the server binary for the SDK suites"
cargo build ${cargo_flags[@]+"${cargo_flags[@]}"} --bin switchboard
export SWITCHBOARD_BIN="$PWD/target/debug/switchboard"

# Each suite's directory and the name its totals line uses.
for suite in clients/typescript:typescript clients/python:python clients/go:go \
  clients/java:java demo:demo; do
  dir=${suite%%:*} name=${suite#*:}
  step "$name tests ($dir)"
  set +e
  "$dir/test.sh" 2>&1 | tee "$test_log"
  suite_status=${PIPESTATUS[0]}
  set -e
  count_suite "$name"
  if [[ $suite_status -ne 0 ]]; then
    exit "$suite_status"
  fi
done

step "fuzz: codec and dispatch (${FUZZ_SECONDS:-60} s each)"
set +e
scripts/fuzz.sh 2>&1 | tee "$test_log"
fuzz_status=${PIPESTATUS[0]}
set -e
count_suite fuzz
if [[ $fuzz_status -ne 0 ]]; then
  exit "$fuzz_status"
fi

current_step="done"
printf '\nAll checks passed: fmt, clippy, generated code, buf lint and breaking, and\n'
printf 'Tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
