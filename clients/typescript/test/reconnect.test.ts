/**
 * Reconnect behaviour against real server processes: a network drop is
 * recovered with no gap and no duplicate; a server shutdown (1001) is
 * reconnected to the next server; terminal closes (1008) are not; commands
 * time out.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { WebSocket as NodeWebSocket } from "ws";
import { Client, ConnectionError, ErrorCode, ServerError, TimeoutError } from "../src/node.js";
import type { StateChange } from "../src/node.js";
import { testHooks } from "../src/internal.js";
import { jwt, nextEvent, sleep, startServer, stopProcess, take, withTimeout } from "./helpers.js";

function hooks(client: Client) {
  const h = testHooks.get(client);
  assert.ok(h, "test hooks are registered for every client");
  return h;
}

function recordStates(client: Client): StateChange[] {
  const states: StateChange[] = [];
  client.on("state", (s) => states.push(s));
  return states;
}

test("a network drop is recovered: missed messages once, in order, no duplicates", { timeout: 30_000 }, async () => {
  const server = await startServer();
  const alice = await Client.connect(server.url, { name: "alice" }, { backoff: { baseMs: 400 } });
  const bob = await Client.connect(server.url, { name: "bob" });
  try {
    // Jitter at its top: alice stays away ~400 ms, long enough to miss messages.
    hooks(alice).setRandom(() => 0.999);
    const sub = await alice.join("r");
    await bob.join("r");
    await bob.publish("r", "1");
    assert.deepEqual((await take(sub, 1, 3000)).map((m) => m.text), ["1"]);

    const states = recordStates(alice);
    const rejoined = nextEvent(sub, "rejoined", 10_000);
    assert.ok(hooks(alice).dropConnection());
    assert.equal(alice.state, "reconnecting");
    // Issued while reconnecting: waits for the connection and the rejoin.
    const queued = alice.publish("r", "from alice while away");
    for (const text of ["2", "3", "4"]) {
      await bob.publish("r", text);
    }
    const r = await rejoined;
    assert.equal(r.recovered, true);
    assert.equal(r.missed, 3, "the three messages published while away came in the join reply");
    const ack = await withTimeout(queued, 5000, "the queued publish");
    assert.equal(ack.offset, 5n);
    await bob.publish("r", "6");

    const got = await take(sub, 5, 5000);
    assert.deepEqual(
      got.map((m) => [m.offset, m.text]),
      [
        [2n, "2"],
        [3n, "3"],
        [4n, "4"],
        [5n, "from alice while away"],
        [6n, "6"],
      ],
    );
    await sleep(300);
    assert.equal(sub.buffered, 0, "no duplicate arrived");
    assert.deepEqual(
      states.map((s) => s.state),
      ["reconnecting", "connecting", "connected"],
    );
    assert.equal(states[0]?.code, 1006);
    assert.equal(states[0].attempt, 0);
    assert.ok((states[0].delayMs ?? 0) >= 390 && (states[0].delayMs ?? 0) < 400);
  } finally {
    await alice.close();
    await bob.close();
    await server.stop();
  }
});

test("in-flight commands fail with a temporary ConnectionError when the connection drops", { timeout: 20_000 }, async () => {
  const server = await startServer();
  const c = await Client.connect(server.url, { name: "inflight" }, { backoff: { baseMs: 50 } });
  try {
    await c.join("x");
    const inflight = c.publish("x", "maybe");
    hooks(c).dropConnection();
    const err = await inflight.catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionError, String(err));
    assert.equal(err.temporary, true);
    assert.equal(err.closeCode, 1006);
    await nextEvent(c, "state", 5000, (s) => s.state === "connected");
    assert.ok((await c.publish("x", "after")).offset >= 1n);
  } finally {
    await c.close();
    await server.stop();
  }
});

test("a server shutdown (1001) is reconnected; the new epoch is reported as recoveryFailed", { timeout: 30_000 }, async () => {
  // The helpers' 300 ms close timeout is short for a loaded machine: a
  // server that gives up on the close handshake and drops the socket can
  // reset it before the client has read the 1001 frame (seen as 1006).
  const first = await startServer({
    env: { SWITCHBOARD_LIMITS__CLOSE_TIMEOUT: "5s", SWITCHBOARD_SHUTDOWN_TIMEOUT: "10s" },
  });
  const c = await Client.connect(first.url, { name: "survivor" }, { backoff: { baseMs: 100, maxMs: 400 } });
  let second: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    const sub = await c.join("lobby");
    const ack = await c.publish("lobby", "before");
    assert.equal((await take(sub, 1, 3000))[0]?.text, "before");
    const states = recordStates(c);
    const failed = nextEvent(sub, "recoveryFailed", 15_000);
    const reconnecting = nextEvent(c, "state", 5000, (s) => s.state === "reconnecting");
    const connected = nextEvent(c, "state", 15_000, (s) => s.state === "connected");
    await first.stop("SIGTERM");
    const r = await reconnecting;
    assert.equal(r.code, 1001, `closed with ${r.code} (${r.reason ?? ""})`);

    second = await startServer({ port: first.port });
    const f = await failed;
    assert.equal(f.since.offset, 1n);
    assert.equal(f.since.epoch, ack.epoch);
    assert.notEqual(f.position.epoch, ack.epoch, "a new server has a new epoch");
    await connected;
    assert.equal(c.state, "connected");

    // Offsets restart at 1 in the new epoch and are delivered, not deduped away.
    const again = await c.publish("lobby", "after");
    assert.equal(again.offset, 1n);
    assert.equal((await take(sub, 1, 3000))[0]?.text, "after");
    assert.ok(states.every((s) => s.state !== "closed"));
  } finally {
    await c.close();
    await first.stop();
    await second?.stop();
  }
});

test("terminal closes do not reconnect: bad token, name outside development, expired token (1008)", { timeout: 30_000 }, async () => {
  const secret = "test-secret-0123456789";
  const server = await startServer({
    env: { SWITCHBOARD_DEVELOPMENT: "false", SWITCHBOARD_AUTH__JWT_SECRET: secret },
  });
  let sockets = 0;
  class Counting extends NodeWebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets++;
    }
  }
  const options = { WebSocket: Counting, backoff: { baseMs: 50 } };
  try {
    const bad = await Client.connect(server.url, { token: jwt("wrong-secret", { sub: "mallory" }) }, options).catch(
      (e: unknown) => e,
    );
    assert.ok(bad instanceof ServerError, String(bad));
    assert.equal(bad.code, ErrorCode.UNAUTHORIZED);
    const anonymous = await Client.connect(server.url, { name: "anon" }, options).catch((e: unknown) => e);
    assert.ok(anonymous instanceof ServerError, String(anonymous));
    assert.equal(anonymous.code, ErrorCode.UNAUTHORIZED);
    await sleep(300);
    assert.equal(sockets, 2, "a refused connect is not retried");

    // A valid token that expires while connected: the server closes with 1008.
    const exp = Math.floor(Date.now() / 1000) + 2;
    const c = await Client.connect(server.url, { token: jwt(secret, { sub: "erin", exp }) }, options);
    assert.equal(c.user, "erin");
    assert.ok((c.connectReply?.expiresAtMs ?? 0n) > 0n);
    const sub = await c.join("secure");
    const states = recordStates(c);
    const closed = await nextEvent(c, "state", 10_000, (s) => s.state === "closed");
    assert.equal(closed.code, 1008, `closed with ${closed.code} (${closed.reason ?? ""})`);
    assert.ok(closed.error instanceof ConnectionError);
    await sleep(500);
    assert.deepEqual(states.map((s) => s.state), ["closed"], "no reconnect after 1008");
    assert.equal(sockets, 3);
    await assert.rejects(sub[Symbol.asyncIterator]().next(), ConnectionError);
    const after = await c.publish("secure", "x").catch((e: unknown) => e);
    assert.ok(after instanceof ConnectionError && !after.temporary);
    await c.close();
  } finally {
    await server.stop();
  }
});

test("commands time out: a stopped server, and waiting for a connection that does not come", { timeout: 30_000 }, async () => {
  const server = await startServer();
  const c = await Client.connect(server.url, { name: "patient" }, { commandTimeoutMs: 400, backoff: { baseMs: 100, maxMs: 200 } });
  try {
    await c.join("t");
    await stopProcess(server.process);
    const started = Date.now();
    const err = await c.publish("t", "lost in time").catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    server.process.kill("SIGCONT");
    assert.ok(err instanceof TimeoutError, String(err));
    assert.equal(err.command, "publish");
    assert.equal(err.temporary, true);
    assert.ok(elapsed >= 350 && elapsed < 3000, `timed out after ${elapsed} ms`);
    // The late reply is ignored and the connection keeps working.
    assert.ok((await c.ping()).timestampMs > 0n);

    await server.stop();
    await nextEvent(c, "state", 5000, (s) => s.state === "reconnecting");
    const waited = Date.now();
    const queued = await c.history("t").catch((e: unknown) => e);
    assert.ok(queued instanceof TimeoutError, String(queued));
    assert.ok(Date.now() - waited >= 350);
    assert.notEqual(c.state, "closed", "still trying to reconnect");
  } finally {
    server.process.kill("SIGCONT");
    await c.close();
    await server.stop();
  }
  assert.equal(c.state, "closed");
});
