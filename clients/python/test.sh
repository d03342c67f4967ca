#!/usr/bin/env bash
# The Python SDK's whole check: installs the pinned tools into .venv, installs
# the package from this folder (a real wheel build, not editable), runs the
# linters, then every test (unit, golden vectors, scenarios, reconnect) against
# the real server binary: $SWITCHBOARD_BIN, default <repo>/target/debug/switchboard.
# Prints "python tests: N passed, N failed, N skipped" at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$here"
export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$repo/target/debug/switchboard}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "test.sh: Python >= 3.10 required ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
if ! .venv/bin/python -c '' 2>/dev/null; then
  rm -rf .venv
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install -r requirements-dev.txt
"${pip[@]}" install --no-build-isolation --no-deps --force-reinstall .
"${pip[@]}" check

status=0
echo "== ruff check"
.venv/bin/ruff check . || status=1
echo "== ruff format --check"
.venv/bin/ruff format --check . || status=1
echo "== mypy --strict (src/switchboard/client)"
.venv/bin/mypy --strict || status=1

echo "== pytest (server: $SWITCHBOARD_BIN)"
report_dir=$(mktemp -d)
trap 'rm -rf "$report_dir"' EXIT
.venv/bin/python -m pytest -p no:cacheprovider --junitxml="$report_dir/junit.xml" "$@" || status=1

counts=$(.venv/bin/python - "$report_dir/junit.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0 0")
    raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - failed - skipped, failed, skipped)
PY
)
read -r passed failed skipped <<<"$counts"
if [ "$passed" -eq 0 ]; then
  status=1
fi
echo "python tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
