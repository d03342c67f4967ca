#!/usr/bin/env bash
# Builds Centrifugo v6.9.1 into <repo>/.tools/bench/bin/centrifugo (gitignored).
# Idempotent: does nothing if that binary already reports version 6.9.1.
# Prints the absolute path of the binary on stdout (last line).
# Needs: Go >= 1.26 and access to the Go module proxy (first build only).
set -euo pipefail

CENTRIFUGO_VERSION="6.9.1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
BIN_DIR="$REPO/.tools/bench/bin"
BIN="$BIN_DIR/centrifugo"

have_version() {
  [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q "Centrifugo v${CENTRIFUGO_VERSION} "
}

if ! have_version; then
  mkdir -p "$BIN_DIR"
  echo "building centrifugo v${CENTRIFUGO_VERSION} into $BIN_DIR ..." >&2
  start=$(date +%s)
  # A plain `go install` leaves the version string at its "0.0.0" placeholder (release
  # builds set it with -ldflags), so set it the same way the upstream release does.
  # Usage-stats endpoint/token are left empty, as in any non-release build.
  # Run outside any module so a go.mod/go.work around the repository is ignored.
  (cd / && GOBIN="$BIN_DIR" GOWORK=off GOFLAGS=-buildvcs=false \
     go install \
       -ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=${CENTRIFUGO_VERSION}" \
       "github.com/centrifugal/centrifugo/v6@v${CENTRIFUGO_VERSION}")
  echo "built in $(( $(date +%s) - start ))s" >&2
  if ! have_version; then
    echo "error: $BIN does not report v${CENTRIFUGO_VERSION}:" >&2
    "$BIN" version >&2 || true
    exit 1
  fi
fi

echo "$BIN"
