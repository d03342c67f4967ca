/** Unit tests: backoff, close-code policy, the bounded buffer, dedupe by offset, payload encoding. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ChatMessageSchema, TypingEventSchema } from "../src/gen/chat/v1/chat_pb.js";
import {
  CloseCode,
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_BACKOFF_MAX_MS,
  JoinReplySchema,
  PayloadSchema,
  RoomMessageSchema,
  StreamPositionSchema,
  backoffDelay,
  shouldReconnect,
} from "../src/index.js";
import type { ReceivedMessage } from "../src/index.js";
import { PayloadCodec } from "../src/payload.js";
import { BoundedQueue } from "../src/queue.js";
import { Subscription } from "../src/subscription.js";
import { createRegistry } from "@bufbuild/protobuf";

describe("backoff", () => {
  test("defaults are 0.5 s doubling up to 20 s", () => {
    assert.equal(DEFAULT_BACKOFF_BASE_MS, 500);
    assert.equal(DEFAULT_BACKOFF_MAX_MS, 20_000);
    const top = (attempt: number) => backoffDelay(attempt, {}, () => 0.999999);
    assert.equal(top(0), 499);
    assert.equal(top(1), 999);
    assert.equal(top(2), 1999);
    assert.equal(top(5), 15_999);
    assert.equal(top(6), 19_999);
    assert.equal(top(60), 19_999);
    assert.equal(top(5000), 19_999, "huge attempts stay capped (no Infinity/NaN)");
  });

  test("full jitter: the delay is uniform in [0, cap)", () => {
    assert.equal(backoffDelay(3, {}, () => 0), 0);
    assert.equal(backoffDelay(3, {}, () => 0.5), 2000);
    for (let attempt = 0; attempt < 12; attempt++) {
      const cap = Math.min(20_000, 500 * 2 ** attempt);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(attempt);
        assert.ok(d >= 0 && d < cap, `attempt ${attempt}: ${d} not in [0, ${cap})`);
        assert.ok(Number.isInteger(d));
      }
    }
  });

  test("custom base and cap", () => {
    assert.equal(backoffDelay(0, { baseMs: 100, maxMs: 250 }, () => 0.5), 50);
    assert.equal(backoffDelay(4, { baseMs: 100, maxMs: 250 }, () => 0.5), 125);
  });
});

describe("close codes", () => {
  test("reconnect on network failure, 1001, 1002, 1011-1014 and 4000-4499", () => {
    for (const code of [undefined, 1006, 1001, 1002, 1011, 1012, 1013, 1014, 4000, 4001, 4002, 4499]) {
      assert.equal(shouldReconnect(code), true, `code ${code}`);
    }
  });
  test("never on 1000, 1003, 1007, 1008, 1009 or 4500-4999", () => {
    for (const code of [1000, 1003, 1007, 1008, 1009, 4500, 4999]) {
      assert.equal(shouldReconnect(code), false, `code ${code}`);
    }
  });
  test("every code of CloseCode is classified as documented", () => {
    const reconnect = new Set<number>([
      CloseCode.GOING_AWAY,
      CloseCode.PROTOCOL_ERROR,
      CloseCode.INTERNAL_ERROR,
      CloseCode.TRY_AGAIN_LATER,
      CloseCode.SLOW_CONSUMER,
      CloseCode.CONNECT_TIMEOUT,
      CloseCode.IDLE_TIMEOUT,
      CloseCode.RATE_LIMITED,
      CloseCode.INSUFFICIENT_STATE,
    ]);
    for (const value of Object.values(CloseCode)) {
      if (typeof value !== "number" || value === CloseCode.UNSPECIFIED) continue;
      assert.equal(shouldReconnect(value), reconnect.has(value), `CloseCode ${CloseCode[value]}`);
    }
  });
});

describe("bounded queue", () => {
  test("refuses items when full; pushOver goes past the capacity", async () => {
    const q = new BoundedQueue<number>(3);
    assert.equal(q.push(1), true);
    q.push(2);
    q.push(3);
    assert.equal(q.isFull, true);
    assert.equal(q.push(4), false, "a full queue refuses, dropping nothing");
    q.pushOver(9);
    assert.equal(q.size, 4);
    assert.equal(q.last(), 9);
    assert.deepEqual(await q.next(), { value: 1, done: false });
    q.end();
    assert.deepEqual(await q.next(), { value: 2, done: false });
    assert.deepEqual(await q.next(), { value: 3, done: false });
    assert.deepEqual(await q.next(), { value: 9, done: false });
    assert.deepEqual(await q.next(), { value: undefined, done: true });
  });

  test("a waiting reader gets the next push; end with an error rejects after the items", async () => {
    const q = new BoundedQueue<string>(2);
    const pending = q.next();
    q.push("a");
    assert.deepEqual(await pending, { value: "a", done: false });
    q.push("b");
    q.end(new Error("gone"));
    assert.deepEqual(await q.next(), { value: "b", done: false });
    await assert.rejects(q.next(), /gone/);
    assert.deepEqual(await q.next(), { value: undefined, done: true });
  });

  test("rejects a capacity below 1", () => {
    assert.throws(() => new BoundedQueue(0), RangeError);
  });
});

function roomMessage(offset: number, text = `m${offset}`) {
  return create(RoomMessageSchema, {
    room: "r",
    offset: BigInt(offset),
    id: BigInt(offset),
    sender: "s",
    payload: { text },
  });
}

function newSub(bufferSize = 100): Subscription {
  const codec = new PayloadCodec(undefined);
  return new Subscription(
    {
      codec,
      leaveRoom: () => Promise.resolve(),
      publishTo: () => Promise.reject(new Error("unused")),
    },
    "r",
    false,
    bufferSize,
  );
}

function drain(sub: Subscription): Promise<bigint[]> {
  sub.end();
  return (async () => {
    const out: bigint[] = [];
    for await (const m of sub) out.push(m.offset);
    return out;
  })();
}

describe("subscription dedupe and recovery", () => {
  test("live pushes held during a join are applied after its reply, deduped by offset", async () => {
    const sub = newSub();
    sub.beginJoin();
    sub.push(roomMessage(5)); // arrived before the reply
    sub.push(roomMessage(6));
    const reply = create(JoinReplySchema, { position: { offset: 5n, epoch: "e1" } });
    sub.applyJoin(reply, undefined, false);
    assert.deepEqual(sub.position, create(StreamPositionSchema, { offset: 6n, epoch: "e1" }));
    sub.push(roomMessage(6)); // duplicate
    sub.push(roomMessage(7));
    assert.deepEqual(await drain(sub), [6n, 7n]);
  });

  test("a recovered rejoin delivers the missed messages once", async () => {
    const sub = newSub();
    sub.beginJoin();
    sub.applyJoin(create(JoinReplySchema, { position: { offset: 2n, epoch: "e1" } }), undefined, false);
    sub.push(roomMessage(3));
    const events: unknown[] = [];
    sub.on("rejoined", (e) => events.push(e));
    sub.on("recoveryFailed", (e) => events.push(e));
    const since = sub.resumePosition();
    assert.deepEqual(since, create(StreamPositionSchema, { offset: 3n, epoch: "e1" }));
    sub.beginJoin();
    sub.push(roomMessage(6)); // live, before the reply
    const reply = create(JoinReplySchema, {
      position: { offset: 5n, epoch: "e1" },
      recovered: true,
      messages: [roomMessage(3), roomMessage(4), roomMessage(5)],
    });
    assert.equal(sub.applyJoin(reply, since, true), 2);
    assert.equal(sub.recovered, true);
    assert.deepEqual(await drain(sub), [3n, 4n, 5n, 6n]);
    assert.equal(events.length, 1);
    assert.deepEqual((events[0] as { recovered: boolean; missed: number }).recovered, true);
  });

  test("a failed recovery (new epoch) says so and continues live from the new position", async () => {
    const sub = newSub();
    sub.beginJoin();
    sub.applyJoin(create(JoinReplySchema, { position: { offset: 9n, epoch: "old" } }), undefined, false);
    sub.push(roomMessage(10));
    let failed: { since: { offset: bigint; epoch: string }; position: { offset: bigint; epoch: string } } | undefined;
    sub.on("recoveryFailed", (e) => {
      failed = e;
    });
    const since = sub.resumePosition();
    sub.beginJoin();
    sub.applyJoin(create(JoinReplySchema, { position: { offset: 1n, epoch: "new" }, recovered: false }), since, true);
    assert.equal(failed?.since.offset, 10n);
    assert.equal(failed.position.epoch, "new");
    sub.push(roomMessage(1)); // not newer than the new position: already part of the lost range
    sub.push(roomMessage(2));
    assert.deepEqual(await drain(sub), [10n, 2n]);
  });

  test("overflow keeps the oldest buffered messages and reports the gap in order", async () => {
    const sub = newSub(2);
    sub.beginJoin();
    sub.applyJoin(create(JoinReplySchema, { position: { offset: 0n, epoch: "e" } }), undefined, false);
    const order: string[] = [];
    const seen: bigint[] = [];
    sub.on("overflow", (e) => order.push(`gap after ${e.lastOffset} of ${e.epoch}`));
    sub.on("message", (m: ReceivedMessage) => seen.push(m.offset));
    for (let i = 1; i <= 5; i++) sub.push(roomMessage(i));
    assert.deepEqual(seen, [1n, 2n, 3n, 4n, 5n], "listeners see every message");
    const it = sub[Symbol.asyncIterator]();
    for (let i = 0; i < 2; i++) {
      const r = await it.next();
      assert.ok(r.done !== true);
      order.push(`message ${r.value.offset}`);
    }
    // Room again: later messages are buffered after the gap.
    sub.push(roomMessage(6));
    const r = await it.next();
    assert.ok(r.done !== true);
    order.push(`message ${r.value.offset}`);
    assert.deepEqual(order, ["message 1", "message 2", "gap after 2 of e", "message 6"]);
  });

  test("live pushes held during a join overflow the same way", async () => {
    const sub = newSub(3);
    sub.beginJoin();
    for (let i = 2; i <= 5; i++) sub.push(roomMessage(i)); // 5 does not fit
    const gaps: bigint[] = [];
    sub.on("overflow", (e) => gaps.push(e.lastOffset));
    sub.applyJoin(create(JoinReplySchema, { position: { offset: 1n, epoch: "e" } }), undefined, false);
    const it = sub[Symbol.asyncIterator]();
    const offsets: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await it.next();
      assert.ok(r.done !== true);
      offsets.push(r.value.offset);
    }
    sub.push(roomMessage(6));
    sub.end();
    for await (const m of sub) offsets.push(m.offset);
    assert.deepEqual(offsets, [2n, 3n, 4n, 6n]);
    assert.deepEqual(gaps, [4n]);
  });
});

describe("payload codec", () => {
  const codec = new PayloadCodec(createRegistry(ChatMessageSchema, TypingEventSchema));

  test("text", () => {
    const p = codec.encode("hello");
    assert.equal(p.text, "hello");
    assert.equal(p.typeName, "");
    assert.equal(p.data.length, 0);
  });

  test("typed message round trip", () => {
    const value = create(ChatMessageSchema, { text: "hi", mentions: [{ user: "bob", start: 0, length: 2 }] });
    const p = codec.encode(value);
    assert.equal(p.typeName, "chat.v1.ChatMessage");
    assert.deepEqual(p.data, toBinary(ChatMessageSchema, value));
    const received = codec.roomMessage(create(RoomMessageSchema, { room: "r", offset: 1n, payload: p }));
    assert.equal(received.typeName, "chat.v1.ChatMessage");
    assert.ok(received.value);
    assert.deepEqual(toBinary(ChatMessageSchema, fromBinary(ChatMessageSchema, p.data)), p.data);
  });

  test("text plus typed value, and raw payloads", () => {
    const p = codec.encode({ text: "typing", value: create(TypingEventSchema, { user: "a", typing: true }) });
    assert.equal(p.text, "typing");
    assert.equal(p.typeName, "chat.v1.TypingEvent");
    const raw = codec.encode({ data: new Uint8Array([1, 2]), typeName: "x.Y" });
    assert.equal(raw.typeName, "x.Y");
    const payload = create(PayloadSchema, { text: "as is" });
    assert.equal(codec.encode(payload), payload);
  });

  test("unknown or undecodable types arrive as bytes with no value", () => {
    const unknown = codec.roomMessage(
      create(RoomMessageSchema, { payload: { data: new Uint8Array([1, 2, 3]), typeName: "other.v1.Thing" } }),
    );
    assert.equal(unknown.value, undefined);
    assert.equal(unknown.typeName, "other.v1.Thing");
    assert.deepEqual(unknown.data, new Uint8Array([1, 2, 3]));
    const broken = codec.roomMessage(
      create(RoomMessageSchema, { payload: { data: new Uint8Array([0xff]), typeName: "chat.v1.ChatMessage" } }),
    );
    assert.equal(broken.value, undefined);
  });

  test("publishing an unregistered typed message is a TypeError", () => {
    const bare = new PayloadCodec(undefined);
    assert.throws(() => bare.encode(create(ChatMessageSchema, { text: "x" })), TypeError);
  });
});
