/**
 * Publish retries against a real `redis-server` behind the real server
 * (`SWITCHBOARD_BROKER=redis`, `redis.command_timeout` = 200 ms). Pausing
 * Redis with SIGSTOP makes the server answer a publish with
 * ERROR_CODE_OUTCOME_UNKNOWN: the command is in Redis's socket buffer and is
 * applied once Redis resumes. The SDK's retry with the same idempotency key
 * then gets that first result (`duplicate` = true), and the message is
 * delivered once.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, ErrorCode, ServerError, SwitchboardError } from "../src/node.js";
import type { ClientFrame, ClientOptions, PublishReply, Subscription } from "../src/node.js";
import { testHooks } from "../src/internal.js";
import { recordingWebSocket, sleep, startRedis, startServer, take, withTimeout } from "./helpers.js";
import type { TestRedis, TestServer } from "./helpers.js";

const KEY = /^[0-9a-f]{32}$/;
/** Generous: the CI machine has two loaded cores. */
const COMMAND_TIMEOUT_MS = 10_000;
/** How long Redis stays paused while a publish is retried. */
const PAUSE_MS = 700;
/** How long to watch for a second delivery. */
const QUIET_MS = 500;

/** The idempotency keys of the publishes in `sent`, in order. */
function publishKeys(sent: ClientFrame[]): string[] {
  return sent.flatMap((f) => (f.command.case === "publish" ? [f.command.value.idempotencyKey] : []));
}

/** Counts a subscription's messages, as they arrive. */
function countMessages(sub: Subscription): () => number {
  let n = 0;
  sub.on("message", () => n++);
  return () => n;
}

describe("publish retries with the Redis broker", { timeout: 120_000 }, () => {
  let redis: TestRedis;
  let server: TestServer;
  before(async () => {
    redis = await startRedis();
    server = await startServer({
      env: {
        SWITCHBOARD_BROKER: "redis",
        SWITCHBOARD_REDIS_URL: redis.url,
        SWITCHBOARD_REDIS__COMMAND_TIMEOUT: "200ms",
      },
    });
    // The server publishes with a Lua script (EVALSHA, and on NOSCRIPT a
    // load and a second EVALSHA). Until one publish has loaded it, a publish
    // sent to a paused Redis is only the EVALSHA that fails: it is never
    // applied, and its retry would not be a duplicate. Load it first.
    const warmUp = await Client.connect(server.url, { name: "warm-up" }, { commandTimeoutMs: COMMAND_TIMEOUT_MS });
    try {
      await warmUp.join("warm-up");
      await warmUp.publish("warm-up", "loads the publish script");
    } finally {
      await warmUp.close();
    }
  });
  after(async () => {
    await server.stop();
    await redis.stop();
  });

  /** A publisher (recording its frames) and a subscriber, both joined to `room`. */
  async function pair(room: string, options: ClientOptions = {}) {
    const sent: ClientFrame[] = [];
    const publisher = await Client.connect(server.url, { name: "publisher" }, {
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      WebSocket: recordingWebSocket(sent),
      ...options,
    });
    const subscriber = await Client.connect(server.url, { name: "subscriber" }, { commandTimeoutMs: COMMAND_TIMEOUT_MS });
    const sub = await subscriber.join(room);
    await publisher.join(room);
    return { sent, publisher, subscriber, sub, received: countMessages(sub) };
  }

  test("a publish without a key during a Redis pause is retried and applied once", async () => {
    const { sent, publisher, subscriber, sub, received } = await pair("pay-1");
    try {
      // Waits at the top of their range (~100, ~200, ~400 ms): the retries
      // span well past the pause even when Redis times out quickly.
      testHooks.get(publisher)?.setRandom(() => 0.999);
      let publishing: Promise<PublishReply>;
      await redis.pause();
      try {
        publishing = publisher.publish("pay-1", "charge 1");
        await sleep(PAUSE_MS);
      } finally {
        redis.resume();
      }
      const ack = await withTimeout(publishing, 3 * COMMAND_TIMEOUT_MS, "the retried publish");
      assert.equal(ack.duplicate, true, "a retry found the first attempt applied");
      assert.equal(ack.offset, 1n);
      const keys = publishKeys(sent);
      assert.ok(keys.length >= 2, `the publish was retried (${keys.length} attempts)`);
      assert.match(keys[0] ?? "", KEY);
      assert.ok(keys.every((k) => k === keys[0]), "every attempt carries the same key");

      const [message] = await take(sub, 1, COMMAND_TIMEOUT_MS);
      assert.deepEqual([message?.offset, message?.text, message?.sender], [1n, "charge 1", "publisher"]);
      await sleep(QUIET_MS);
      assert.equal(received(), 1, "delivered exactly once");
    } finally {
      redis.resume();
      await publisher.close();
      await subscriber.close();
    }
  });

  test("with publishRetries 0, OUTCOME_UNKNOWN carries the key, and publishing again with it is a duplicate", async () => {
    const { sent, publisher, subscriber, sub, received } = await pair("pay-2", { publishRetries: 0 });
    try {
      let failure: unknown;
      await redis.pause();
      try {
        failure = await publisher.publish("pay-2", "charge 2").then(
          () => assert.fail("the publish succeeded while Redis was paused"),
          (e: unknown) => e,
        );
      } finally {
        redis.resume();
      }
      assert.ok(failure instanceof ServerError, String(failure));
      assert.equal(failure.codeName, "ERROR_CODE_OUTCOME_UNKNOWN", failure.message);
      assert.equal(failure.code, ErrorCode.OUTCOME_UNKNOWN);
      assert.equal(failure.temporary, true);
      const key = failure.idempotencyKey;
      assert.match(key ?? "", KEY);
      assert.deepEqual(publishKeys(sent), [key], "sent once, not retried");

      const ack = await publisher.publish("pay-2", "charge 2", { idempotencyKey: key });
      assert.equal(ack.duplicate, true, "the first attempt was applied after Redis resumed");
      assert.equal(ack.offset, 1n);
      const [message] = await take(sub, 1, COMMAND_TIMEOUT_MS);
      assert.deepEqual([message?.offset, message?.text], [1n, "charge 2"]);
      await sleep(QUIET_MS);
      assert.equal(received(), 1, "delivered exactly once");
    } finally {
      redis.resume();
      await publisher.close();
      await subscriber.close();
    }
  });

  test("closing the client ends a publish's pending retries", async () => {
    const { sent, publisher, subscriber } = await pair("pay-3", { publishRetries: 50 });
    try {
      // Top-of-range waits grow to 2 s, so most of the time is spent waiting.
      testHooks.get(publisher)?.setRandom(() => 0.999);
      await redis.pause();
      const publishing = publisher.publish("pay-3", "charge 3").then(
        () => assert.fail("the publish succeeded while Redis was paused"),
        (e: unknown) => e,
      );
      await sleep(2500);
      const attempts = publishKeys(sent).length;
      assert.ok(attempts >= 2, `retried while paused (${attempts} attempts)`);
      const closedAt = Date.now();
      await publisher.close();
      const failure = await withTimeout(publishing, 1000, "the publish to end after close()");
      assert.ok(Date.now() - closedAt < 1000);
      assert.ok(failure instanceof SwitchboardError, String(failure));
      assert.match(failure.idempotencyKey ?? "", KEY);
      await sleep(300);
      assert.equal(publishKeys(sent).length, attempts, "no attempt after close()");
    } finally {
      redis.resume();
      await publisher.close();
      await subscriber.close();
    }
  });
});
