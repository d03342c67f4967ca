#!/usr/bin/env bash
# Profiles a Switchboard build and writes a Markdown summary:
#
#   - memory: the server under `valgrind --tool=massif`, 2,000 connections
#     joined and idle (switchboard-bench idle); heap bytes per connection by
#     allocation site at the peak;
#   - CPU: the server under `perf record -e cpu-clock -g` (software clock
#     sampling: this machine has no hardware counters) while 1,000 subscribers
#     receive 100 publishes/s (switchboard-bench fanout --rate 100); the
#     hottest symbols, kernel and user space.
#
#   scripts/profile.sh [SERVER_BIN] [OUT] [TITLE]
#     SERVER_BIN  default target/release/switchboard (built here)
#     OUT         default docs/bench/profile.md
#     TITLE       names the build in the headings (default: "this build")
#
# Needs valgrind and perf (Debian: valgrind, linux-perf); apt-get installs
# them when missing and running as root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --locked -p switchboard -p switchboard-bench --bins
server=${1:-target/release/switchboard}
out=${2:-docs/bench/profile.md}
title=${3:-this build}
bench=target/release/switchboard-bench
work=$(mktemp -d)
trap 'rm -rf "$work"; [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null || true' EXIT

for tool in valgrind perf; do
  if ! command -v "$tool" >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      apt-get install -y -q "$([[ $tool == perf ]] && echo linux-perf || echo valgrind)" >/dev/null
    else
      echo "profile.sh: $tool is not installed" >&2
      exit 1
    fi
  fi
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server did not start on port $1" >&2
  return 1
}

# --- memory ---------------------------------------------------------------
port=$(free_port)
SWITCHBOARD_LOG__LEVEL=warn valgrind --tool=massif --threshold=0.1 --max-snapshots=60 \
  --massif-out-file="$work/massif.out" "$server" serve --listen "127.0.0.1:$port" \
  >"$work/massif.log" 2>&1 &
pid=$!
wait_port "$port"
connections=2000
"$bench" run --target switchboard --scenario idle --subscribers "$connections" --rooms 100 \
  --addr "127.0.0.1:$port" --pid "$pid" --settle 5 --timeout 120 >"$work/idle.json"
kill -TERM "$pid"
wait "$pid" || true
pid=""

# --- CPU ------------------------------------------------------------------
port=$(free_port)
SWITCHBOARD_LOG__LEVEL=warn "$server" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
wait_port "$port"
perf record -F 999 -e cpu-clock -g -p "$pid" -o "$work/perf.data" -- sleep 14 >/dev/null 2>&1 &
perf_pid=$!
sleep 1
"$bench" run --target switchboard --scenario fanout --subscribers 1000 --rate 100 \
  --publishes 1000 --duration 10 --addr "127.0.0.1:$port" --pid "$pid" >"$work/fanout.json"
wait "$perf_pid" || true
kill -TERM "$pid"
wait "$pid" || true
pid=""
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none \
  >"$work/perf.txt" 2>/dev/null

mkdir -p "$(dirname "$out")"
python3 - "$work" "$connections" "$title" >"$out" <<'PY'
import collections, json, re, sys

work, connections, title = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def shorten(name):
    """Keeps generic arguments one level deep: `f<a::B<…>, C<…>>`."""
    out, depth = [], 0
    for ch in name:
        if ch == "<":
            depth += 1
            if depth == 2:
                out.append("<…")
            if depth >= 2:
                continue
        elif ch == ">":
            depth -= 1
            if depth >= 1:
                if depth == 1:
                    out.append(">")
                continue
        elif depth >= 2:
            continue
        out.append(ch)
    return "".join(out)


# Massif: attribute each leaf of the peak snapshot's tree to the first frame
# that names a crate of interest.
lines = open(f"{work}/massif.out").read().split("\n")
start = next(i for i, l in enumerate(lines) if l.startswith("heap_tree=peak")) + 1
node = re.compile(r"^(\s*)n(\d+): (\d+) (.*)$")
keys = ("tokio::runtime::task::core::Cell", "tungstenite::", "tokio::sync::mpsc", "hyper::",
        "hyper_util::", "switchboard::", "bytes::", "tokio::")
stack, sites = [], collections.Counter()
for line in lines[start:]:
    m = node.match(line)
    if not m:
        break
    depth, children, size, desc = len(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    stack = stack[:depth] + [desc]
    if children == 0:
        site = next((d for d in stack[1:] if any(k in d for k in keys)), stack[-1])
        site = re.sub(r"0x[0-9A-F]+: ", "", site)
        sites[shorten(site)[:160]] += size

idle = json.load(open(f"{work}/idle.json"))
total = sum(sites.values())
print(f"### Idle memory by allocation site: {title}\n")
print(f"valgrind massif, peak heap with {connections:,} connections joined and idle "
      f"(`switchboard-bench run --scenario idle --subscribers {connections}`): "
      f"{total / connections:,.0f} heap bytes per connection; the same run's RSS delta was "
      f"{idle['rss_per_connection']:,.0f} bytes per connection under valgrind.\n")
print("| bytes per connection | share | allocation site |\n| ---: | ---: | --- |")
for site, size in sites.most_common(12):
    print(f"| {size / connections:,.0f} | {100 * size / total:.1f}% | `{site}` |")

# perf: the hottest symbols.
fanout = json.load(open(f"{work}/fanout.json"))
rows = []
for line in open(f"{work}/perf.txt"):
    m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)$", line)
    if m:
        rows.append((float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()))
kernel = sum(r[0] for r in rows if r[2] == "k")
print(f"\n### CPU at 100 publishes/s into 1,000 subscribers: {title}\n")
print(f"`perf record -F 999 -e cpu-clock -g` on the server during "
      f"`switchboard-bench run --scenario fanout --subscribers 1000 --rate 100`: "
      f"{fanout['cpu_us_per_delivery']:.2f} µs of server CPU per delivery; "
      f"{kernel:.0f}% of the samples in the kernel (the TCP send path, which on loopback "
      f"includes the receiver's side).\n")
print("| share | where | symbol |\n| ---: | --- | --- |")
for share, dso, kind, symbol in rows[:20]:
    symbol = shorten(re.sub(r"\s+-\s+-\s*$", "", symbol).strip())
    print(f"| {share:.1f}% | {'kernel' if kind == 'k' else dso} | `{symbol[:120]}` |")
PY
echo "wrote $out"
