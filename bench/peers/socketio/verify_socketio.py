#!/usr/bin/env python3
"""Protocol check for the Socket.IO peer (raw Engine.IO v4 / Socket.IO v5 over WebSocket).

How to run (needs Node 20 with `npm ci` done in this folder, and a Python >= 3.9 with the
`websockets` package, >= 13):

    (cd bench/peers/socketio && npm ci)
    python3 -m venv /tmp/ws-venv && /tmp/ws-venv/bin/pip install websockets==15.0.1
    /tmp/ws-venv/bin/python bench/peers/socketio/verify_socketio.py

Optional: NODE=/path/to/node (default: node on PATH), VERIFY_SKIP_PING=1 skips the
server-ping check (which takes about 50 s).

It starts `node server.js 0`, reads the port from the single ready line, then speaks the
wire protocol by hand from several WebSocket clients and prints what the server sends,
frame by frame. Exit code 0 means every check passed.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = os.environ.get("NODE", "node")
ROOM = "bench"
READY_RE = re.compile(r"^socketio listening on http://127\.0\.0\.1:(\d+)$")

FAILURES = []


def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        FAILURES.append(what)


def event(name, *args, ack_id=None):
    """Socket.IO EVENT packet in the default namespace: 4 (EIO message) + 2 (SIO event) [+ ack id] + JSON."""
    return "42" + ("" if ack_id is None else str(ack_id)) + json.dumps([name, *args], separators=(",", ":"))


class Client:
    def __init__(self, name, ws):
        self.name = name
        self.ws = ws
        self.frames = []          # (t, frame)
        self.pings = []
        self.auto_pong = True
        self.closed = None
        self.closed_at = None
        self.waiters = []
        self.task = asyncio.create_task(self._reader())

    async def _reader(self):
        try:
            async for frame in self.ws:
                t = time.monotonic()
                self.frames.append((t, frame))
                if frame == "2":
                    self.pings.append(t)
                    print(f"    [{self.name}] <- '2' (ping) {'-> answering 3' if self.auto_pong else '-> NOT answering'}")
                    if self.auto_pong:
                        await self.ws.send("3")
                for w in list(self.waiters):
                    w.set()
        except ConnectionClosed:
            pass
        self.closed = (self.ws.close_code, self.ws.close_reason)
        self.closed_at = time.monotonic()
        for w in list(self.waiters):
            w.set()

    async def wait_for(self, pred, timeout=5.0, start=0):
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            while seen < len(self.frames):
                f = self.frames[seen][1]
                seen += 1
                if pred(f):
                    return f
            if self.closed is not None or time.monotonic() >= deadline:
                return None
            ev = asyncio.Event()
            self.waiters.append(ev)
            try:
                await asyncio.wait_for(ev.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                pass
            finally:
                self.waiters.remove(ev)


def is_message(f, data=None):
    if not isinstance(f, str) or not f.startswith('42["message",'):
        return False
    return data is None or json.loads(f[2:]) == ["message", data]


async def open_client(url, name):
    ws = await connect(url, compression=None, max_size=None)
    t_open = time.monotonic()
    first = await ws.recv()
    c = Client(name, ws)
    c.open_packet = first
    c.t_open = t_open
    await ws.send("40")                       # Socket.IO CONNECT to namespace "/"
    c.connect_packet = await c.wait_for(lambda f: f.startswith("40"))
    return c


async def run(port):
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    print(f"\n== open + connect: {url}")
    a = await open_client(url, "A")
    b = await open_client(url, "B")
    print(f"  [A] open packet (text frame): {a.open_packet}")
    print(f"  [A] after sending '40': {a.connect_packet}")
    check(isinstance(a.open_packet, str) and a.open_packet.startswith("0{"), "first frame is the EIO open packet '0{...}'")
    hs = json.loads(a.open_packet[1:])
    check(hs.get("pingInterval") == 25000 and hs.get("pingTimeout") == 20000,
          f"pingInterval={hs.get('pingInterval')} pingTimeout={hs.get('pingTimeout')} maxPayload={hs.get('maxPayload')} upgrades={hs.get('upgrades')}")
    check(bool(a.connect_packet) and "sid" in json.loads(a.connect_packet[2:]), "'40' answered with '40{\"sid\":...}'")

    print("\n== join: B with an ack (421[...] -> 431[]), A without")
    await b.ws.send(event("join", ROOM, ack_id=1))
    ack = await b.wait_for(lambda f: f.startswith("431"))
    print(f"  [B] sent {event('join', ROOM, ack_id=1)!r}, got {ack!r}")
    check(ack == "431[]", "join ack arrives as '431[]'")
    await a.ws.send(event("join", ROOM))
    await a.ws.send(event("publish", "warmup", "x", ack_id=2))  # same socket, in order: join is done once acked
    check(await a.wait_for(lambda f: f == "432[]") is not None, "events of one socket are handled in order (ack after join)")

    print("\n== A publishes a 100-char string")
    payload = "0123456789" * 10
    na, nb = len(a.frames), len(b.frames)
    await a.ws.send(event("publish", ROOM, payload))
    fb = await b.wait_for(lambda f: is_message(f, payload), start=nb)
    fa = await a.wait_for(lambda f: is_message(f, payload), start=na)
    print(f"  [B] frame ({len(fb or '')} chars): {fb}")
    check(fb is not None, "B receives 42[\"message\",data] with identical data")
    check(fa is not None, "A (publisher, member of the room) receives its own message")
    na = len(a.frames)
    await a.ws.send(event("publish", ROOM, "with-ack", ack_id=3))
    await a.wait_for(lambda f: f == "433[]", start=na)
    order = [f if f == "433[]" else "message" for _, f in a.frames[na:] if f == "433[]" or is_message(f, "with-ack")]
    print(f"  [A] publish with ack id 3: order on A's socket = {order}")
    check(order == ["message", "433[]"], "own message is written before the ack")
    check(len(fb or "") == len(payload) + len('42["message",""]'), "frame = 16 bytes of envelope (42[\"message\",\"\"]) + the string")

    print("\n== C, not in the room, publishes")
    c = await open_client(url, "C")
    nb = len(b.frames)
    await c.ws.send(event("publish", ROOM, "from-c", ack_id=7))
    check(await c.wait_for(lambda f: f == "437[]") is not None, "publish ack '437[]' (ack is optional)")
    check(await b.wait_for(lambda f: is_message(f, "from-c"), start=nb) is not None, "B receives C's message")
    check(await c.wait_for(lambda f: is_message(f), timeout=0.5) is None, "C does not receive it (not a member)")
    await c.ws.close()

    print("\n== framing: one packet per WebSocket frame")
    nb = len(b.frames)
    burst = 2000
    for i in range(burst):
        await a.ws.send(event("publish", ROOM, "b%04d" % i))
    last = await b.wait_for(lambda f: is_message(f, "b%04d" % (burst - 1)), timeout=15, start=nb)
    got = [f for _, f in b.frames[nb:] if is_message(f)]
    check(last is not None and got == [event("message", "b%04d" % i) for i in range(burst)],
          f"burst of {burst}: B got {len(got)} frames, each exactly one '42[\"message\",...]' packet, in order")
    types = {type(f).__name__ for _, f in b.frames}
    check(types == {"str"}, f"all server frames are text frames ({types})")

    d = await open_client(url, "D")
    await d.ws.send(event("join", ROOM) + "\x1e" + event("join", "other"))
    await d.wait_for(lambda f: False, timeout=1.0)
    print(f"  two packets joined by \\x1e in one frame -> D closed={d.closed}")
    check(d.closed is not None, "packets cannot be batched in a WS frame (\\x1e is polling-only): server drops the client")

    if os.environ.get("VERIFY_SKIP_PING"):
        print("\n== ping check skipped")
    else:
        print("\n== server ping: A answers '3', B stays silent")
        b.auto_pong = False
        deadline = b.t_open + 25 + 20 + 5
        while time.monotonic() < deadline and b.closed is None:
            await asyncio.sleep(0.25)
        if a.pings:
            print(f"  A: first ping {a.pings[0] - a.t_open:.1f}s after open")
        check(bool(a.pings) and 24 <= a.pings[0] - a.t_open <= 26.5, "first ping '2' pingInterval (25 s) after open")
        if b.pings and b.closed:
            print(f"  B closed={b.closed}, {b.closed_at - b.pings[0]:.1f}s after its ping")
        check(b.closed is not None and b.pings and 19 <= b.closed_at - b.pings[0] <= 22,
              "B (no pong) is dropped pingTimeout (20 s) after the ping")
        while a.pings and time.monotonic() < a.pings[0] + 27 and len(a.pings) < 2:
            await asyncio.sleep(0.25)
        if len(a.pings) >= 2:
            print(f"  A: second ping {a.pings[1] - a.pings[0]:.1f}s after the first")
        check(len(a.pings) >= 2 and 24 <= a.pings[1] - a.pings[0] <= 26.5, "next ping 25 s after the pong")
        na = len(a.frames)
        await a.ws.send(event("publish", ROOM, "still-alive"))
        check(await a.wait_for(lambda f: is_message(f, "still-alive"), start=na) is not None,
              "A (answered the pings) is still connected")

    await a.ws.close()
    await b.ws.close()


def main():
    cmd = [NODE, os.path.join(HERE, "server.js"), "0"]
    print("starting:", " ".join(cmd))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().rstrip("\n")
        m = READY_RE.match(line)
        if not m:
            raise RuntimeError(f"unexpected first line {line!r}; stderr: {proc.stderr.read()}")
        port = int(m.group(1))
        print(f"ready after {(time.monotonic() - t0) * 1000:.0f} ms: {line!r}")
        asyncio.run(run(port))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        print(f"\nserver exit code {proc.returncode}; more stdout: {out!r}; stderr: {err!r}")
        check(proc.returncode == 0 and out == "", "SIGTERM -> clean exit 0, and the ready line was the only stdout")
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) FAILED")
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
