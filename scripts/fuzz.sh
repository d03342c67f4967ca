#!/usr/bin/env bash
# Runs each fuzz target in fuzz/ for FUZZ_SECONDS (default 60) with
# cargo-fuzz (libFuzzer, AddressSanitizer) on the nightly toolchain, starting
# from the committed corpus in fuzz/corpus/<target>. New inputs go to a
# temporary directory, so the committed corpus only changes by hand. A crash
# fails the run; its input is saved in fuzz/artifacts/<target>/.
#
# Prints "fuzz tests: N passed, N failed, 0 skipped" (one test per target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${FUZZ_SECONDS:-60}
cargo_fuzz_version=0.13.2
targets=(codec dispatch)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is required (rustup toolchain install nightly)" >&2
  exit 1
fi
if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

passed=0 failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "$work/$target"
  if cargo +nightly fuzz run "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    passed=$((passed + 1))
  else
    echo "fuzz $target found a failure; see fuzz/artifacts/$target/" >&2
    failed=$((failed + 1))
  fi
done
echo "fuzz tests: $passed passed, $failed failed, 0 skipped"
[[ $failed -eq 0 ]]
