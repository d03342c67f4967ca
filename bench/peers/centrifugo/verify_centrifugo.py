#!/usr/bin/env python3
"""Protocol check for the Centrifugo peer (bidirectional WebSocket, protobuf protocol v2).

How to run (needs only a Python >= 3.9 with the `websockets` package, >= 13):

    python3 -m venv /tmp/ws-venv && /tmp/ws-venv/bin/pip install websockets==15.0.1
    bash bench/peers/centrifugo/build.sh            # once; builds .tools/bench/bin/centrifugo
    /tmp/ws-venv/bin/python bench/peers/centrifugo/verify_centrifugo.py

Optional: CENTRIFUGO_BIN=/path/to/centrifugo (default: <repo>/.tools/bench/bin/centrifugo),
VERIFY_SKIP_PING=1 skips the server-ping check (which takes up to ~55 s).

It starts the binary with config.json on a free 127.0.0.1 port, waits for GET /health,
then drives hand-encoded protobuf Commands over two or three WebSocket clients and
prints what the server sends back, frame by frame. Exit code 0 means every check passed.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("CENTRIFUGO_BIN", os.path.join(REPO, ".tools", "bench", "bin", "centrifugo"))
CONFIG = os.path.join(HERE, "config.json")
CHANNEL = "bench"

FAILURES = []


def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        FAILURES.append(what)


# --------------------------------------------------------------------------- protobuf

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf: bytes, i: int):
    shift = 0
    val = 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        if not b & 0x80:
            return val, i
        shift += 7


def f_varint(field: int, value: int) -> bytes:
    return varint(field << 3 | 0) + varint(value)


def f_bytes(field: int, value) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    return varint(field << 3 | 2) + varint(len(value)) + value


def decode(buf: bytes) -> dict:
    """Decode one protobuf message into {field: [values]} (varints as int, len-delimited as bytes)."""
    out = {}
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v = buf[i:i + n]
            i += n
        elif wt == 1:
            v = buf[i:i + 8]
            i += 8
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wt}")
        out.setdefault(field, []).append(v)
    return out


def one(msg: dict, field: int, default=None):
    v = msg.get(field)
    return v[0] if v else default


def delimit(msg: bytes) -> bytes:
    """Frame payload = one or more varint(len) + message."""
    return varint(len(msg)) + msg


def split_frame(frame: bytes):
    msgs = []
    i = 0
    while i < len(frame):
        n, i = read_varint(frame, i)
        msgs.append(frame[i:i + n])
        i += n
    return msgs


# Command{id=1, connect=4, subscribe=5, publish=7}
def cmd_connect(cid: int, name: str = "verify") -> bytes:
    return f_varint(1, cid) + f_bytes(4, f_bytes(4, name))           # ConnectRequest{name=4}


def cmd_subscribe(cid: int, channel: str) -> bytes:
    return f_varint(1, cid) + f_bytes(5, f_bytes(1, channel))        # SubscribeRequest{channel=1}


def cmd_publish(cid: int, channel: str, data: bytes) -> bytes:
    return f_varint(1, cid) + f_bytes(7, f_bytes(1, channel) + f_bytes(2, data))  # PublishRequest


EMPTY_COMMAND_FRAME = delimit(b"")  # == b"\x00": the pong


def describe_reply(r: bytes) -> str:
    if r == b"":
        return "EMPTY Reply (server ping)"
    m = decode(r)
    parts = []
    if 1 in m:
        parts.append(f"id={m[1][0]}")
    if 2 in m:
        e = decode(m[2][0])
        parts.append(f"error(code={one(e, 1)}, message={one(e, 2, b'').decode()!r})")
    if 4 in m:
        p = decode(m[4][0])
        desc = f"push(channel={one(p, 2, b'').decode()!r}"
        if 1 in p:
            desc += f", id={p[1][0]}"
        if 4 in p:
            pub = decode(p[4][0])
            info = decode(pub[5][0]) if 5 in pub else None
            desc += f", pub(data={len(one(pub, 4, b''))}B"
            if info is not None:
                desc += (f", info(user={one(info, 1, b'').decode()!r}, "
                         f"client={one(info, 2, b'').decode()!r})")
            desc += f", fields={sorted(pub)})"
        if 11 in p:
            d = decode(p[11][0])
            desc += f", disconnect(code={one(d, 1)}, reason={one(d, 2, b'').decode()!r})"
        parts.append(desc + ")")
    if 5 in m:
        c = decode(m[5][0])
        parts.append(f"connect(client={one(c, 1, b'').decode()!r}, version={one(c, 2, b'').decode()!r}, "
                     f"ping={one(c, 7)}, pong={bool(one(c, 8))})")
    if 6 in m:
        parts.append(f"subscribe({sorted(decode(m[6][0]))} fields)")
    if 8 in m:
        parts.append("publish(ok)")
    return "Reply{" + ", ".join(parts) + "}"


# --------------------------------------------------------------------------- client

class Client:
    def __init__(self, name, ws):
        self.name = name
        self.ws = ws
        self.frames = []           # (t, raw bytes)
        self.replies = []          # (t, reply bytes, frame index)
        self.pings = []            # times of empty replies
        self.auto_pong = True
        self.closed = None         # (code, reason)
        self.closed_at = None
        self.text_frames = 0
        self.task = asyncio.create_task(self._reader())
        self.waiters = []

    async def _reader(self):
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    self.text_frames += 1
                    frame = frame.encode()
                t = time.monotonic()
                idx = len(self.frames)
                self.frames.append((t, frame))
                for r in split_frame(frame):
                    self.replies.append((t, r, idx))
                    if r == b"":
                        self.pings.append(t)
                        print(f"    [{self.name}] <- ping frame {frame.hex()} "
                              f"({'answering b' + repr(EMPTY_COMMAND_FRAME)[1:] if self.auto_pong else 'NOT answering'})")
                        if self.auto_pong:
                            await self.ws.send(EMPTY_COMMAND_FRAME)
                for w in list(self.waiters):
                    w.set()
        except ConnectionClosed:
            pass
        self.closed = (self.ws.close_code, self.ws.close_reason)
        self.closed_at = time.monotonic()
        for w in list(self.waiters):
            w.set()

    async def send(self, *commands: bytes):
        await self.ws.send(b"".join(delimit(c) for c in commands))

    async def wait_for(self, pred, timeout=5.0):
        """Wait until pred(reply_bytes) is true for some reply; return it."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            while seen < len(self.replies):
                r = self.replies[seen][1]
                seen += 1
                if pred(r):
                    return r
            if self.closed is not None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ev = asyncio.Event()
            self.waiters.append(ev)
            try:
                await asyncio.wait_for(ev.wait(), left)
            except asyncio.TimeoutError:
                pass
            finally:
                self.waiters.remove(ev)


def reply_id(r: bytes):
    return one(decode(r), 1) if r else None


def is_push_pub(r: bytes):
    return bool(r) and 4 in decode(r) and 4 in decode(decode(r)[4][0])


def pub_data(r: bytes) -> bytes:
    return one(decode(one(decode(one(decode(r), 4)), 4)), 4, b"")


# --------------------------------------------------------------------------- main

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(port: int, proc, timeout=10.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"centrifugo exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("centrifugo did not become ready")


async def run(port: int):
    base = f"ws://127.0.0.1:{port}/connection/websocket"

    print("\n== connect (A via ?format=protobuf, B via Sec-WebSocket-Protocol: centrifuge-protobuf)")
    ws_a = await connect(base + "?format=protobuf", compression=None, max_size=None)
    ws_b = await connect(base, subprotocols=["centrifuge-protobuf"], compression=None, max_size=None)
    print(f"  negotiated subprotocol: A={ws_a.subprotocol!r} B={ws_b.subprotocol!r}")
    a, b = Client("A", ws_a), Client("B", ws_b)
    t_conn = time.monotonic()
    for c in (a, b):
        await c.send(cmd_connect(1))
        r = await c.wait_for(lambda r: reply_id(r) == 1)
        print(f"  [{c.name}] frame bytes: {c.frames[-1][1].hex()[:80]}...")
        print(f"  [{c.name}] {describe_reply(r)}")
        check(r is not None and 5 in decode(r), f"{c.name}: connect reply with ConnectResult")
        cr = decode(one(decode(r), 5))
        ping, pong = one(cr, 7), bool(one(cr, 8))
    check(ping == 25 and pong, f"ConnectResult.ping={ping} (s), pong={pong} -> client must answer pings")

    print("\n== subscribe both to", CHANNEL)
    for c in (a, b):
        await c.send(cmd_subscribe(2, CHANNEL))
        r = await c.wait_for(lambda r: reply_id(r) == 2)
        print(f"  [{c.name}] {describe_reply(r)}  raw={r.hex()}")
        check(r is not None and 6 in decode(r) and 2 not in decode(r), f"{c.name}: subscribe OK")

    print("\n== A publishes 100 bytes")
    payload = (b"0123456789" * 10)
    na, nb = len(a.replies), len(b.replies)
    await a.send(cmd_publish(3, CHANNEL, payload))
    rb = await b.wait_for(is_push_pub)
    ra_ack = await a.wait_for(lambda r: reply_id(r) == 3)
    ra_pub = await a.wait_for(is_push_pub, timeout=2)
    print(f"  [B] {describe_reply(rb) if rb else None}")
    if rb:
        print(f"  [B] push frame {len(b.frames[-1][1])} bytes for a {len(payload)}-byte payload: "
              f"{b.frames[b.replies[nb][2]][1].hex()}")
    print(f"  [A] ack: {describe_reply(ra_ack) if ra_ack else None}  raw={ra_ack.hex() if ra_ack else None}")
    print(f"  [A] own publication: {describe_reply(ra_pub) if ra_pub else None}")
    check(rb is not None and pub_data(rb) == payload, "B receives A's publication, data byte-identical")
    check(ra_ack is not None and 8 in decode(ra_ack), "A gets PublishResult reply (id=3)")
    check(ra_pub is not None and pub_data(ra_pub) == payload,
          "A (subscribed publisher) receives its own publication")
    order = [("ack" if reply_id(r) == 3 else "pub") for _, r, _ in a.replies[na:] if reply_id(r) == 3 or is_push_pub(r)]
    print(f"  [A] order of ack vs own pub: {order}; frames holding them: "
          f"{sorted(set(i for _, r, i in a.replies[na:] if r))}")

    print("\n== publisher that is not subscribed (C)")
    ws_c = await connect(base + "?format=protobuf", compression=None)
    c = Client("C", ws_c)
    await c.send(cmd_connect(1))
    await c.wait_for(lambda r: reply_id(r) == 1)
    nb = len(b.replies)
    await c.send(cmd_publish(2, CHANNEL, b"from-c"))
    rc = await c.wait_for(lambda r: reply_id(r) == 2)
    rb = await b.wait_for(lambda r: is_push_pub(r) and pub_data(r) == b"from-c")
    stray = await c.wait_for(is_push_pub, timeout=0.5)
    check(rc is not None and 8 in decode(rc), "C (not subscribed) may publish")
    check(rb is not None, "B receives C's publication")
    check(stray is None, "C does not receive its publication (not subscribed)")
    await ws_c.close()

    print("\n== an unsolicited pong (empty Command before any ping) is a protocol error")
    ws_d = await connect(base + "?format=protobuf", compression=None)
    d = Client("D", ws_d)
    await d.send(cmd_connect(1))
    await d.wait_for(lambda r: reply_id(r) == 1)
    await ws_d.send(EMPTY_COMMAND_FRAME)
    await d.wait_for(lambda r: False, timeout=2)
    print(f"  D closed={d.closed}")
    check(d.closed is not None and d.closed[0] == 3501, "pong without a pending ping -> close 3501 (bad request)")

    print("\n== several commands in ONE client frame + burst: how are replies framed?")
    fa, fb = len(a.frames), len(b.frames)
    await a.send(*[cmd_publish(100 + i, CHANNEL, b"m%03d" % i) for i in range(3)])
    for i in range(3):
        await a.wait_for(lambda r, i=i: reply_id(r) == 100 + i)
    await b.wait_for(lambda r: is_push_pub(r) and pub_data(r) == b"m002")
    await asyncio.sleep(0.2)
    print(f"  3 publishes in one frame: A got {len(a.frames) - fa} frame(s) with "
          f"{[len(split_frame(f)) for _, f in a.frames[fa:]]} message(s); "
          f"B got {len(b.frames) - fb} frame(s) with {[len(split_frame(f)) for _, f in b.frames[fb:]]}")
    check(True, "server accepts several varint-delimited Commands in one frame")

    fb, nb = len(b.frames), len(b.replies)
    burst = 2000
    await a.send(*[cmd_publish(1000 + i, CHANNEL, b"b%04d" % i) for i in range(burst)])
    await b.wait_for(lambda r: is_push_pub(r) and pub_data(r) == b"b%04d" % (burst - 1), timeout=10)
    got = [pub_data(r) for _, r, _ in b.replies[nb:] if is_push_pub(r)]
    per_frame = [len(split_frame(f)) for _, f in b.frames[fb:]]
    print(f"  burst of {burst}: B got {len(got)} pubs in {len(per_frame)} frames; "
          f"max per frame {max(per_frame)}, frames with >1 message: {sum(1 for n in per_frame if n > 1)}")
    check(got == [b"b%04d" % i for i in range(burst)], "burst delivered complete and in order")
    check(max(per_frame) <= 16, "at most 16 messages per server frame (centrifuge writer default)")
    check(a.text_frames == 0 and b.text_frames == 0, "all server frames are binary WS frames")

    if os.environ.get("VERIFY_SKIP_PING"):
        print("\n== ping check skipped")
    else:
        print("\n== server ping: A answers with an empty Command (b'\\x00'), B stays silent")
        b.auto_pong = False
        deadline = t_conn + 25 + 8 + 5
        while time.monotonic() < deadline and not (b.closed and a.pings):
            await asyncio.sleep(0.25)
        if a.pings:
            print(f"  first ping {a.pings[0] - t_conn:.1f}s after connect")
        check(bool(a.pings) and 12 <= a.pings[0] - t_conn <= 26,
              "first empty Reply (ping) comes at a random point 12.5-25 s after connect")
        ping_frames = [f for _, f in a.frames if f == b"\x00"]
        check(bool(ping_frames), "ping arrives as a WS binary frame of exactly one byte 0x00")
        if b.pings:
            print(f"  B closed={b.closed}, {b.closed_at - b.pings[0]:.1f}s after its ping"
                  if b.closed else "  B still open")
        check(b.closed is not None and b.closed[0] == 3012,
              f"non-answering B is closed with code 3012 (no pong) after pong_timeout: {b.closed}")
        if a.pings:
            while time.monotonic() < a.pings[0] + 27 and len(a.pings) < 2:
                await asyncio.sleep(0.25)
            if len(a.pings) >= 2:
                print(f"  A: second ping {a.pings[1] - a.pings[0]:.1f}s after the first")
            check(len(a.pings) >= 2 and 24 <= a.pings[1] - a.pings[0] <= 26,
                  "later pings every 25 s (client.ping_interval)")
        await a.send(cmd_publish(5000, CHANNEL, b"still-alive"))
        r = await a.wait_for(lambda r: reply_id(r) == 5000)
        check(r is not None and a.closed is None, "A (answered the ping) is still connected")

    await ws_a.close()
    await ws_b.close()


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: run bench/peers/centrifugo/build.sh first")
    print(subprocess.run([BIN, "version"], capture_output=True, text=True).stdout.strip())
    port = free_port()
    cmd = [BIN, "--config", CONFIG, "--http_server.port", str(port)]
    print("starting:", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        took = wait_ready(port, proc)
        print(f"ready: GET http://127.0.0.1:{port}/health -> 200 after {took * 1000:.0f} ms")
        asyncio.run(run(port))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=35)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        print(f"\nserver exit code {proc.returncode}; stdout {len(out)} bytes; stderr (log, level warn):")
        for line in err.decode().splitlines()[-10:]:
            print("   ", line)
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) FAILED")
        sys.exit(1)
    print("\nall checks passed")


if __name__ == "__main__":
    main()
