#!/usr/bin/env bash
# The Go SDK's whole check: downloads the pinned modules (verified by
# go.sum), installs the pinned staticcheck into .tools/, checks gofmt, go mod
# tidy, go vet and staticcheck, then runs every test (unit, golden vectors,
# scenarios, reconnect, the README example) with the race detector against
# the real server binary: $SWITCHBOARD_BIN, default <repo>/target/debug/switchboard.
# Prints "go tests: N passed, N failed, N skipped" at the end, counted from
# the `go test -json` events (each subtest counts: each vector, each scenario).
# Extra arguments go to go test (e.g. ./test.sh -run Scenarios).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$here"
export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$repo/target/debug/switchboard}"
staticcheck_version=v0.8.2

if ! command -v go >/dev/null; then
  echo "test.sh: the go command is not installed" >&2
  exit 1
fi
if [ ! -x "$SWITCHBOARD_BIN" ]; then
  echo "test.sh: server binary not found: $SWITCHBOARD_BIN (build it with cargo build, or set SWITCHBOARD_BIN)" >&2
  exit 1
fi

echo "== go mod download ($(go version))"
go mod download
go mod verify
mkdir -p .tools
if [ "$(.tools/staticcheck -version 2>/dev/null || true)" != "staticcheck 2026.2.2 (0.8.2)" ]; then
  GOBIN="$here/.tools" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
go build -o .tools/testreport ./internal/testreport

status=0
echo "== gofmt -l"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:"
  echo "$unformatted"
  status=1
fi
echo "== go mod tidy -diff"
go mod tidy -diff || status=1
echo "== go vet"
go vet ./... || status=1
echo "== staticcheck $staticcheck_version"
.tools/staticcheck ./... || status=1

echo "== go test -race (server: $SWITCHBOARD_BIN)"
report_dir=$(mktemp -d)
trap 'rm -rf "$report_dir"' EXIT
echo "0 1 0" >"$report_dir/counts" # stays if the report cannot run
set +e
go test -race -count=1 -timeout 10m -json "$@" ./... 2>&1 |
  .tools/testreport -counts "$report_dir/counts"
codes=("${PIPESTATUS[@]}")
set -e
read -r passed failed skipped <"$report_dir/counts"
if [ "${codes[0]}" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # go test failed outside any test it reported
fi
if [ "${codes[1]}" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  status=1
fi
echo "go tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
