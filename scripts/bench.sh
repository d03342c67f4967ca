#!/usr/bin/env bash
# Runs every benchmark target side by side and writes docs/BENCHMARKS.md.
#
#   scripts/bench.sh                  every target, every scenario, 3 runs each
#   RUNS=5 scripts/bench.sh           more runs
#   TARGETS="switchboard yardstick" scripts/bench.sh
#   scripts/bench.sh --baseline REV   only Switchboard, built from git revision
#                                     REV, into docs/bench/baseline.jsonl (the
#                                     "before" of the before/after table)
#
# Targets: switchboard (release build), switchboard-redis (two release nodes
# sharing rooms through a local redis-server; fan-out and rtt scenarios
# only; subscribers alternate between the nodes, the publisher is on the
# first; CPU and memory add up the three processes), yardstick (the bench crate's minimal
# tokio-tungstenite forwarder), centrifugo v6.9.1 (built from the Go module
# proxy by bench/peers/centrifugo/build.sh), socketio (Socket.IO 4.8.4 on
# Node, bench/peers/socketio). Within each run the scenarios go one after the
# other and the targets alternate, starting with a different target each run,
# so slow drift on the machine does not favour one of them. Every target is
# started fresh for every measurement and stopped after it.
#
# Outcomes go to docs/bench/results.jsonl (one JSON object per measurement),
# the facts about the run to docs/bench/meta.json, and the report with its
# chart to docs/BENCHMARKS.md and docs/benchmarks.svg. Runs take about
# 5 minutes per round on 2 cores. Network traffic stays on 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

runs=${RUNS:-3}
targets=(${TARGETS:-switchboard switchboard-redis yardstick centrifugo socketio})
baseline_rev=""
if [[ "${1:-}" == "--baseline" ]]; then
  baseline_rev=${2:?usage: scripts/bench.sh --baseline REV}
  targets=(switchboard)
fi

# Scenario name and arguments. Every phase is bounded by --duration (seconds
# of publishing) and --timeout (seconds of waiting), whatever the target.
scenarios=(
  "fanout|--scenario fanout --subscribers 1000 --publishes 20000 --duration 10"
  "fanout-rate|--scenario fanout --subscribers 1000 --rate 100 --publishes 1000 --duration 10"
  "rooms|--scenario rooms --rooms 100 --subscribers 10 --publishes 50000 --duration 10"
  "rtt|--scenario rtt --publishes 5000 --duration 10"
  "idle|--scenario idle --subscribers 10000 --rooms 100"
  "connect|--scenario connect --subscribers 5000 --concurrency 100"
)

step() { printf '\n==> %s\n' "$*"; }

step "build (release): switchboard, switchboard-bench, yardstick"
cargo build --release --locked -p switchboard -p switchboard-bench --bins
bench="$repo/target/release/switchboard-bench"
switchboard_bin="$repo/target/release/switchboard"

if [[ -n "$baseline_rev" ]]; then
  step "build switchboard at $baseline_rev (baseline)"
  worktree="$repo/.tools/bench/baseline-src"
  rm -rf "$worktree"
  git worktree prune
  git worktree add --detach "$worktree" "$baseline_rev" >/dev/null
  trap 'git -C "$repo" worktree remove --force "$worktree" >/dev/null 2>&1 || true' EXIT
  CARGO_TARGET_DIR="$repo/.tools/bench/baseline-target" \
    cargo build --release --locked --manifest-path "$worktree/Cargo.toml" --bin switchboard
  switchboard_bin="$repo/.tools/bench/baseline-target/release/switchboard"
fi

unavailable=()
for t in "${targets[@]}"; do
  case $t in
    switchboard-redis)
      if ! command -v redis-server >/dev/null; then
        unavailable+=("switchboard-redis: redis-server is not installed (apt-get install redis-server)")
      fi
      ;;
    centrifugo)
      step "build centrifugo v6.9.1"
      if ! bench/peers/centrifugo/build.sh; then
        unavailable+=("centrifugo: bench/peers/centrifugo/build.sh failed (see its output)")
      fi
      ;;
    socketio)
      step "install socket.io (npm ci)"
      if ! (cd bench/peers/socketio && npm ci --no-audit --no-fund --loglevel=error); then
        unavailable+=("socketio: npm ci in bench/peers/socketio failed")
      fi
      ;;
  esac
done

mkdir -p docs/bench
if [[ -n "$baseline_rev" ]]; then
  results=docs/bench/baseline.jsonl
else
  results=docs/bench/results.jsonl
fi
: >"$results"

# A failed measurement is recorded, not fatal: the report shows its error.
measure() {
  local target=$1 name=$2 round=$3 args=$4
  printf '%-12s %-12s run %d: ' "$target" "$name" "$round"
  local out
  local full status=0
  # shellcheck disable=SC2086 # args is a list of flags
  full=$(RUST_BACKTRACE=0 "$bench" run --target "$target" $args --switchboard-bin "$switchboard_bin" \
    --out "$results" --tag "run $round" 2>&1) || status=$?
  if [[ $status -eq 0 ]]; then
    out=$(tail -n 1 <<<"$full")
    python3 - "$out" <<'PY'
import json, sys
try:
    o = json.loads(sys.argv[1])
except ValueError:
    print(sys.argv[1]); raise SystemExit
parts = []
for key, unit, scale in (("deliveries_per_sec", "deliveries/s", 1), ("cpu_us_per_delivery", "µs CPU/delivery", 1),
                         ("p99_us", "µs p99", 1), ("rss_per_connection", "KiB/conn", 1024), ("connects_per_sec", "connects/s", 1)):
    if o.get(key) is not None:
        parts.append(f"{o[key] / scale:,.2f} {unit}")
if o.get("errors"):
    parts.append(f"{o['errors']} errors ({o.get('first_error')})")
print(", ".join(parts))
PY
  else
    # The error and its causes, on one line.
    out=$(sed -n '/^Error/,$p' <<<"$full" | tr -s '\n ' '  ')
    [[ -z $out ]] && out=$(tail -n 1 <<<"$full")
    echo "failed: $out"
    local reason=${out//\"/\'}
    printf '{"target":"%s","scenario":"%s","label":"%s (did not complete)","connections":0,"deliveries":0,"expected":0,"seconds":0,"errors":1,"first_error":"%s","tag":"run %d"}\n' \
      "$target" "${name%%-*}" "$args" "${reason:0:300}" "$round" >>"$results"
  fi
}

available_targets=()
for t in "${targets[@]}"; do
  skip=""
  for u in "${unavailable[@]+"${unavailable[@]}"}"; do
    [[ $u == "$t:"* ]] && skip=1
  done
  [[ -z $skip ]] && available_targets+=("$t")
done

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
n=${#available_targets[@]}
for round in $(seq 1 "$runs"); do
  for entry in "${scenarios[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    step "run $round/$runs: $name"
    for i in $(seq 0 $((n - 1))); do
      t=${available_targets[$(((i + round - 1) % n))]}
      if [[ $t == switchboard-redis && " fanout fanout-rate rtt " != *" $name "* ]]; then
        continue
      fi
      measure "$t" "$name" "$round" "$args"
    done
  done
done

if [[ -n "$baseline_rev" ]]; then
  echo "baseline outcomes written to $results (switchboard at $(git rev-parse --short "$baseline_rev"))"
  exit 0
fi

step "report"
version() { "$@" 2>/dev/null | head -n 1 || echo "not available"; }
centrifugo_version=$(version "$repo/.tools/bench/bin/centrifugo" version)
socketio_version=$(cd bench/peers/socketio && node -p 'require("socket.io/package.json").version' 2>/dev/null || echo "not available")
not_measured=""
for u in "${unavailable[@]+"${unavailable[@]}"}"; do
  not_measured+="${not_measured:+; }$u"
done
M_MACHINE=$("$bench" machine) \
  M_STARTED=$started \
  M_COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo ' (with uncommitted changes)')" \
  M_COMMAND="RUNS=$runs TARGETS=\"${targets[*]}\" scripts/bench.sh" \
  M_CENTRIFUGO="$centrifugo_version, bench/peers/centrifugo/config.json" \
  M_SOCKETIO="socket.io $socketio_version on Node $(node --version 2>/dev/null || echo '?'), bench/peers/socketio/server.js" \
  M_RUSTC=$(rustc --version) \
  M_REDIS="$(version redis-server --version)" \
  M_GO=$(go version 2>/dev/null || echo 'not available') \
  M_NOT_MEASURED=$not_measured \
  M_RUNS=$runs \
  python3 - >docs/bench/meta.json <<'PY'
import json, os
e = os.environ
meta = {
    "machine": e["M_MACHINE"],
    "started": e["M_STARTED"],
    "commit": e["M_COMMIT"],
    "command": e["M_COMMAND"],
    "rounds": e["M_RUNS"] + " per target and scenario, targets alternating",
    "switchboard": "release build of this commit, default configuration except log level warn and rate limits off (limits.*_per_second = 0, as the peers have none)",
    "switchboard-redis": "two nodes of the same build with broker = redis (other settings as above) and one local " + e["M_REDIS"] + " without persistence; connections alternate between the nodes, publishers use the first; CPU and memory are the sum of the three processes",
    "yardstick": "bench/src/bin/yardstick.rs, release build",
    "centrifugo": e["M_CENTRIFUGO"],
    "socket.io": e["M_SOCKETIO"],
    "rustc": e["M_RUSTC"],
    "go": e["M_GO"],
}
if e["M_NOT_MEASURED"]:
    meta["not measured"] = e["M_NOT_MEASURED"]
print(json.dumps(meta, indent=2, sort_keys=True))
PY
report_args=(--results docs/bench/results.jsonl --meta docs/bench/meta.json
  --out docs/BENCHMARKS.md --chart docs/benchmarks.svg)
if [[ -f docs/bench/baseline.jsonl ]]; then
  report_args+=(--baseline docs/bench/baseline.jsonl)
fi
# Prose about the performance work, then the profiles (scripts/profile.sh)
# of the build before it and of this one.
for include in docs/bench/notes.md docs/bench/memory.md docs/bench/profile-before.md \
  docs/bench/profile.md; do
  if [[ -f $include ]]; then
    report_args+=(--include "$include")
  fi
done
"$bench" report "${report_args[@]}"
echo "wrote docs/BENCHMARKS.md and docs/benchmarks.svg"
