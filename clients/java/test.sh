#!/usr/bin/env bash
# The Java SDK's whole check. Maven fetches the pinned plugins and dependencies
# itself (into ~/.m2), compiles the generated code, its Kotlin DSL and the SDK
# (the SDK and the tests with -Xlint:all -Werror, the SDK's public API with
# -Xdoclint), packages the jar and runs every JUnit 5 test (unit, golden
# vectors, scenarios, reconnect, typed payloads, the README example, Kotlin)
# against the real server binary: $SWITCHBOARD_BIN, default
# <repo>/target/debug/switchboard (build it with `cargo build`).
# Extra arguments go to Maven (e.g. ./test.sh -Dtest=ReconnectTest).
# Prints "java tests: N passed, N failed, N skipped" at the end, counted from
# the Surefire reports.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$here"
export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$repo/target/debug/switchboard}"

for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "test.sh: $tool not found (JDK 11 or newer and Maven 3.8 or newer are needed)" >&2
    exit 1
  fi
done
if [ ! -x "$SWITCHBOARD_BIN" ]; then
  echo "test.sh: server binary not found: $SWITCHBOARD_BIN (run cargo build, or set SWITCHBOARD_BIN)" >&2
  exit 1
fi

reports=target/surefire-reports
rm -rf "$reports"
status=0
echo "== mvn verify (server: $SWITCHBOARD_BIN)"
mvn -B --no-transfer-progress verify "$@" || status=1

echo "== jar contents"
artifact=$(ls target/switchboard-client-*.jar 2>/dev/null | head -n 1 || true)
if [ -z "$artifact" ]; then
  echo "no jar was built" >&2
  status=1
elif jar tf "$artifact" | grep -E '^(com/example|dev/switchboard/testing)/' >/dev/null; then
  echo "$artifact holds test-only classes (com.example.chat.v1 or dev.switchboard.testing.v1)" >&2
  status=1
else
  echo "$artifact: dev.switchboard.client and dev.switchboard.v1 only"
fi

passed=0
failed=0
skipped=0
shopt -s nullglob
for report in "$reports"/TEST-*.xml; do
  suite=$(grep -m 1 -o '<testsuite [^>]*>' "$report" || true)
  count() {
    local n
    n=$(printf '%s' "$suite" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9][0-9]*' || true)
    echo "${n:-0}"
  }
  tests=$(count tests)
  bad=$(( $(count failures) + $(count errors) ))
  skip=$(count skipped)
  passed=$(( passed + tests - bad - skip ))
  failed=$(( failed + bad ))
  skipped=$(( skipped + skip ))
done
if [ "$passed" -eq 0 ] || [ "$failed" -ne 0 ]; then
  status=1
fi
echo "java tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
