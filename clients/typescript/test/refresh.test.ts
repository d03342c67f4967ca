/**
 * Token refresh and rate limits against real server processes in production
 * mode (HS256 tokens): a refreshed connection outlives its first token, and
 * reconnects with the new one; another user's token ends the client (1008);
 * a rate-limited command reports how long to wait.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { WebSocket as NodeWebSocket } from "ws";
import { Client, ConnectionError, ErrorCode, ServerError } from "../src/node.js";
import type { ClientOptions, StateChange } from "../src/node.js";
import { testHooks } from "../src/internal.js";
import { jwt, nextEvent, sleep, startServer, take, withTimeout } from "./helpers.js";
import type { TestServer } from "./helpers.js";

const secret = "refresh-secret-0123456789";

function productionServer(): Promise<TestServer> {
  return startServer({ env: { SWITCHBOARD_DEVELOPMENT: "false", SWITCHBOARD_AUTH__JWT_SECRET: secret } });
}

/** A token for `sub` expiring `seconds` from now (`exp` is in whole seconds). */
function token(sub: string, seconds: number): { token: string; exp: number } {
  const exp = Math.floor(Date.now() / 1000) + seconds;
  return { token: jwt(secret, { sub, exp }), exp };
}

/** Client options whose WebSocket counts the sockets it opens. */
function counting(): { options: ClientOptions; sockets: () => number } {
  let made = 0;
  class Counting extends NodeWebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      made++;
    }
  }
  return { options: { WebSocket: Counting }, sockets: () => made };
}

function recordStates(client: Client): StateChange[] {
  const states: StateChange[] = [];
  client.on("state", (s) => states.push(s));
  return states;
}

/** Sleeps until the server has certainly closed connections of a token expiring at `exp`. */
async function pastExpiry(exp: number): Promise<void> {
  await sleep(Math.max(0, exp * 1000 - Date.now()) + 1000);
}

test("refresh: the connection outlives its first token, with no reconnect", { timeout: 30_000 }, async () => {
  const server = await productionServer();
  const { options, sockets } = counting();
  const short = token("frank", 2);
  const c = await Client.connect(server.url, { token: short.token }, options);
  try {
    assert.equal(c.user, "frank");
    assert.equal(c.connectReply?.expiresAtMs, BigInt(short.exp * 1000));
    const sub = await c.join("refreshed");
    const states = recordStates(c);

    const long = token("frank", 3600);
    const reply = await c.refresh(long.token);
    assert.equal(reply.expiresAtMs, BigInt(long.exp * 1000));

    await pastExpiry(short.exp);
    assert.equal(c.state, "connected");
    assert.ok((await c.ping()).timestampMs > 0n);
    const ack = await c.publish("refreshed", "still here");
    assert.equal((await take(sub, 1, 3000))[0]?.offset, ack.offset);
    assert.deepEqual(states, [], "no state change: the connection never dropped");
    assert.equal(sockets(), 1);
  } finally {
    await c.close();
    await server.stop();
  }
});

test("refresh: a reconnect after the first token expired uses the new token and recovers", { timeout: 30_000 }, async () => {
  const server = await productionServer();
  const short = token("grace", 2);
  const alice = await Client.connect(server.url, { token: short.token }, { backoff: { baseMs: 400 } });
  const bob = await Client.connect(server.url, { token: token("heidi", 3600).token });
  try {
    const hooks = testHooks.get(alice);
    assert.ok(hooks, "test hooks are registered for every client");
    // Jitter at its top: alice stays away ~400 ms, long enough to miss messages.
    hooks.setRandom(() => 0.999);
    const sub = await alice.join("r");
    await bob.join("r");
    await bob.publish("r", "1");
    assert.deepEqual((await take(sub, 1, 3000)).map((m) => m.text), ["1"]);

    const long = token("grace", 3600);
    await alice.refresh(long.token);
    await pastExpiry(short.exp);
    assert.equal(alice.state, "connected", "the refreshed connection is still open");

    const states = recordStates(alice);
    const rejoined = nextEvent(sub, "rejoined", 10_000);
    assert.ok(hooks.dropConnection());
    for (const text of ["2", "3"]) {
      await bob.publish("r", text);
    }
    const r = await rejoined;
    assert.equal(r.recovered, true);
    assert.equal(alice.user, "grace");
    assert.equal(
      alice.connectReply?.expiresAtMs,
      BigInt(long.exp * 1000),
      "the reconnect authenticated with the refreshed token",
    );
    await bob.publish("r", "4");
    assert.deepEqual(
      (await take(sub, 3, 5000)).map((m) => [m.offset, m.text]),
      [
        [2n, "2"],
        [3n, "3"],
        [4n, "4"],
      ],
    );
    assert.deepEqual(
      states.map((s) => s.state),
      ["reconnecting", "connecting", "connected"],
    );
    assert.equal(states[0]?.code, 1006);
  } finally {
    await alice.close();
    await bob.close();
    await server.stop();
  }
});

test("refresh with another user's token: ServerError UNAUTHORIZED, then closed (1008) for good", { timeout: 30_000 }, async () => {
  const server = await productionServer();
  const { options, sockets } = counting();
  const c = await Client.connect(server.url, { token: token("ivan", 3600).token }, { ...options, backoff: { baseMs: 50 } });
  try {
    const sub = await c.join("mine");
    const states = recordStates(c);
    const closed = nextEvent(c, "state", 10_000, (s) => s.state === "closed");

    const err = await c.refresh(token("mallory", 3600).token).catch((e: unknown) => e);
    assert.ok(err instanceof ServerError, String(err));
    assert.equal(err.code, ErrorCode.UNAUTHORIZED);
    assert.equal(err.temporary, false);

    const end = await closed;
    assert.equal(end.code, 1008, `closed with ${end.code} (${end.reason ?? ""})`);
    assert.ok(end.error instanceof ServerError && end.error.code === ErrorCode.UNAUTHORIZED, String(end.error));
    await sleep(500);
    assert.deepEqual(states.map((s) => s.state), ["closed"], "no reconnect after 1008");
    assert.equal(sockets(), 1);
    await assert.rejects(sub[Symbol.asyncIterator]().next(), ServerError);
    const after = await c.ping().catch((e: unknown) => e);
    assert.ok(after instanceof ConnectionError && !after.temporary, String(after));
  } finally {
    await c.close();
    await server.stop();
  }
});

test("a rate-limited command is a temporary ServerError with retryAfterMs", { timeout: 30_000 }, async () => {
  const server = await startServer({
    env: {
      SWITCHBOARD_DEVELOPMENT: "false",
      SWITCHBOARD_AUTH__JWT_SECRET: secret,
      SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND: "2",
      SWITCHBOARD_LIMITS__COMMAND_BURST: "2",
      SWITCHBOARD_LIMITS__RATE_LIMIT_STRIKES: "100",
    },
  });
  const c = await Client.connect(server.url, { token: token("judy", 3600).token });
  try {
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => c.ping()));
    const limited = results.flatMap((r) =>
      r.status === "rejected" && r.reason instanceof ServerError ? [r.reason] : [],
    );
    assert.ok(limited.length > 0, "some pings were over the limit");
    assert.equal(
      limited.length + results.filter((r) => r.status === "fulfilled").length,
      results.length,
      "every ping either succeeded or was rate limited",
    );
    for (const e of limited) {
      assert.equal(e.code, ErrorCode.RATE_LIMITED);
      assert.equal(e.codeName, "ERROR_CODE_RATE_LIMITED");
      assert.equal(e.temporary, true);
      assert.ok(e.retryAfterMs > 0, `retryAfterMs = ${e.retryAfterMs}`);
    }
    // Waiting as told lets the next command through on the same connection.
    await sleep(Math.max(...limited.map((e) => e.retryAfterMs)));
    assert.ok((await withTimeout(c.ping(), 3000, "a ping after waiting")).timestampMs > 0n);
    assert.equal(c.state, "connected");
  } finally {
    await c.close();
    await server.stop();
  }
});
