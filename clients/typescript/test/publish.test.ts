/**
 * Safe publishing against the real server (memory broker): every publish
 * carries an idempotency key (the app's or a generated one), and every error
 * a publish fails with carries the key it used. The retries after
 * ERROR_CODE_UNAVAILABLE / ERROR_CODE_OUTCOME_UNKNOWN need a broker that
 * fails: see publish-redis.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, ConnectionError, ErrorCode, ServerError, SwitchboardError, TimeoutError, newIdempotencyKey } from "../src/node.js";
import type { ClientFrame } from "../src/node.js";
import { testHooks } from "../src/internal.js";
import { publishRetryDelay } from "../src/publish.js";
import { recordingWebSocket, sleep, startServer, stopProcess, take } from "./helpers.js";
import type { TestServer } from "./helpers.js";

const KEY = /^[0-9a-f]{32}$/;

/** The idempotency keys of the publishes in `sent`, in order. */
function publishKeys(sent: ClientFrame[]): string[] {
  return sent.flatMap((f) => (f.command.case === "publish" ? [f.command.value.idempotencyKey] : []));
}

/** The error a command rejects with (fails the test if it succeeds). */
async function rejection(promise: Promise<unknown>): Promise<SwitchboardError> {
  const err = await promise.then(
    () => assert.fail("expected the command to fail"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof SwitchboardError, String(err));
  return err;
}

test("newIdempotencyKey: 32 lowercase hex characters (128 random bits), fresh every call", () => {
  const keys = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const key = newIdempotencyKey();
    assert.match(key, KEY);
    keys.add(key);
  }
  assert.equal(keys.size, 1000);
});

test("publish retry delays: full jitter below 100 ms doubling up to 2 s", () => {
  const top = () => 0.999_999;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 40].map((retry) => publishRetryDelay(retry, top)),
    [99, 199, 399, 799, 1599, 1999, 1999, 1999],
  );
  assert.equal(publishRetryDelay(3, () => 0), 0);
});

describe("publish keys", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  test("publishes without a key get a fresh generated key each and are two messages", async () => {
    const sent: ClientFrame[] = [];
    const alice = await Client.connect(server.url, { name: "alice" }, { WebSocket: recordingWebSocket(sent) });
    const bob = await Client.connect(server.url, { name: "bob" });
    try {
      const sub = await bob.join("keys");
      await alice.join("keys");
      const first = await alice.publish("keys", "same text");
      const second = await alice.publish("keys", "same text", { idempotencyKey: "" });
      assert.deepEqual([first.offset, first.duplicate, second.offset, second.duplicate], [1n, false, 2n, false]);
      const got = await take(sub, 2, 5000);
      assert.deepEqual(got.map((m) => [m.offset, m.text]), [
        [1n, "same text"],
        [2n, "same text"],
      ]);

      await alice.publish("keys", "mine", { idempotencyKey: "order-3" });
      const keys = publishKeys(sent);
      assert.equal(keys.length, 3);
      assert.match(keys[0] ?? "", KEY);
      assert.match(keys[1] ?? "", KEY);
      assert.notEqual(keys[0], keys[1]);
      assert.equal(keys[2], "order-3", "the app's key is sent as given");
    } finally {
      await alice.close();
      await bob.close();
    }
  });

  test("a publish error carries the key and other errors are not retried", async () => {
    const sent: ClientFrame[] = [];
    const alice = await Client.connect(server.url, { name: "alice" }, { WebSocket: recordingWebSocket(sent) });
    try {
      const generated = await rejection(alice.publish("not-joined", "x"));
      assert.ok(generated instanceof ServerError);
      assert.equal(generated.code, ErrorCode.NOT_JOINED);
      const given = await rejection(alice.publish("not-joined", "x", { idempotencyKey: "app-key" }));
      assert.equal(given.idempotencyKey, "app-key");
      const keys = publishKeys(sent);
      assert.equal(keys.length, 2, "each publish was sent once");
      assert.equal(generated.idempotencyKey, keys[0]);
      assert.match(generated.idempotencyKey ?? "", KEY);
      await alice.join("x");
      const other = await rejection(alice.join("x"));
      assert.equal(other.idempotencyKey, undefined, "errors of other commands carry no key");
    } finally {
      await alice.close();
    }
  });

  test("publishes rejected together by a close keep their own keys", async () => {
    const alice = await Client.connect(server.url, { name: "alice" }, { backoff: { baseMs: 60_000 } });
    // The drop leaves the client waiting a long backoff: both publishes queue.
    assert.ok(testHooks.get(alice)?.dropConnection());
    const one = rejection(alice.publish("r", "1", { idempotencyKey: "k-1" }));
    const two = rejection(alice.publish("r", "2"));
    await alice.close();
    const [e1, e2] = await Promise.all([one, two]);
    assert.ok(e1 instanceof ConnectionError && e2 instanceof ConnectionError);
    assert.equal(e1.temporary, false);
    assert.equal(e1.idempotencyKey, "k-1");
    assert.match(e2.idempotencyKey ?? "", KEY);
    assert.match(e2.message, /client was closed/);
  });

  test("a timed-out publish carries its key and is not retried", { timeout: 30_000 }, async () => {
    const own = await startServer();
    const sent: ClientFrame[] = [];
    const alice = await Client.connect(own.url, { name: "alice" }, {
      commandTimeoutMs: 1000,
      WebSocket: recordingWebSocket(sent),
    });
    try {
      await alice.join("r");
      await stopProcess(own.process);
      const err = await rejection(alice.publish("r", "lost?"));
      assert.ok(err instanceof TimeoutError, String(err));
      assert.equal(err.temporary, true);
      await sleep(300);
      const keys = publishKeys(sent);
      assert.equal(keys.length, 1);
      assert.equal(err.idempotencyKey, keys[0]);
    } finally {
      own.process.kill("SIGCONT");
      await alice.close();
      await own.stop();
    }
  });
});
