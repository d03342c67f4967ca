/** The public API against a real server: commands, events, errors, typed payloads. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, isMessage, toBinary } from "@bufbuild/protobuf";
import { ChatMessageSchema, Format, TypingEventSchema } from "../src/gen/chat/v1/chat_pb.js";
import { Client, ConnectionError, ErrorCode, ServerError, SwitchboardError } from "../src/node.js";
import type { ReceivedDirectMessage, StateChange } from "../src/node.js";
import { WebSocket as NodeWebSocket } from "ws";
import { nextEvent, sleep, startServer, take } from "./helpers.js";
import type { TestServer } from "./helpers.js";

const types = [ChatMessageSchema, TypingEventSchema];

describe("client", () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  test("connect, join, publish, history, presence, leave, close", async () => {
    const alice = await Client.connect(server.url, { name: "alice" });
    const bob = await Client.connect(server.url, { name: "bob" });
    try {
      assert.equal(alice.state, "connected");
      assert.equal(alice.user, "alice");
      assert.ok(alice.connectReply?.client);
      const sub = await alice.join("api-room", { presenceEvents: true });
      assert.equal(sub.room, "api-room");
      assert.equal(sub.recovered, false);
      const joined = nextEvent(sub, "memberJoined", 3000);
      const bobSub = await bob.join("api-room");
      assert.equal((await joined).member?.user, "bob");

      const ack1 = await bob.publish("api-room", "one");
      const ack2 = await bobSub.publish("two", { idempotencyKey: "k-2" });
      const again = await bob.publish("api-room", "two", { idempotencyKey: "k-2" });
      assert.equal(ack1.offset, 1n);
      assert.equal(ack2.offset, 2n);
      assert.equal(again.duplicate, true);
      assert.equal(again.offset, 2n);

      const got = await take(sub, 2, 3000);
      assert.deepEqual(got.map((m) => [m.offset, m.text, m.sender]), [
        [1n, "one", "bob"],
        [2n, "two", "bob"],
      ]);
      assert.equal(sub.position.offset, 2n);
      assert.equal(sub.position.epoch, ack1.epoch);

      const page = await alice.history("api-room", { limit: 1 });
      assert.equal(page.messages.length, 1);
      assert.equal(page.messages[0]?.offset, 2n);
      assert.equal(page.hasMore, true);
      const older = await alice.history("api-room", { before: 2 });
      assert.deepEqual(older.messages.map((m) => m.text), ["one"]);
      const newer = await alice.history("api-room", { after: 1n });
      assert.deepEqual(newer.messages.map((m) => m.text), ["two"]);

      const members = await alice.presence("api-room");
      assert.deepEqual(members.map((m) => m.user).sort(), ["alice", "bob"]);

      const left = nextEvent(sub, "memberLeft", 3000);
      await bobSub.leave();
      assert.equal(bobSub.active, false);
      assert.equal((await left).member?.user, "bob");
      const rest: bigint[] = [];
      for await (const m of bobSub) rest.push(m.offset);
      assert.deepEqual(rest, [1n, 2n], "a left subscription's iterator ends after its buffered messages");

      const pong = await alice.ping();
      assert.ok(pong.timestampMs > 0n);
    } finally {
      await alice.close();
      await bob.close();
    }
    assert.equal(alice.state, "closed");
  });

  test("server errors are typed rejections", async () => {
    const c = await Client.connect(server.url, { name: "carol" });
    try {
      const notJoined = await c.publish("nowhere", "x").catch((e: unknown) => e);
      assert.ok(notJoined instanceof ServerError);
      assert.equal(notJoined.code, ErrorCode.NOT_JOINED);
      assert.equal(notJoined.codeName, "ERROR_CODE_NOT_JOINED");
      assert.equal(notJoined.temporary, false);
      await assert.rejects(c.join(""), (e) => e instanceof ServerError && e.code === ErrorCode.INVALID_ROOM);
      await c.join("dup");
      await assert.rejects(c.join("dup"), (e) => e instanceof ServerError && e.code === ErrorCode.ALREADY_JOINED);
      await assert.rejects(c.leave("never"), (e) => e instanceof ServerError && e.code === ErrorCode.NOT_JOINED);
      // A frame over the server's limit is refused before it is sent (the
      // server would close the connection with 1009).
      const limit = c.connectReply?.maxMessageSize ?? 0;
      assert.ok(limit > 0);
      const big = await c.publish("dup", "x".repeat(limit + 1)).catch((e: unknown) => e);
      assert.ok(big instanceof SwitchboardError && !(big instanceof ServerError), String(big));
      assert.equal(big.temporary, false);
      // The connection survives command errors.
      assert.ok((await c.ping()).timestampMs > 0n);
    } finally {
      await c.close();
    }
  });

  test("direct messages and their event", async () => {
    const a = await Client.connect(server.url, { name: "dana" });
    const b = await Client.connect(server.url, { name: "erin" });
    try {
      const received = nextEvent(b, "directMessage", 3000);
      const reply = await a.direct("erin", "psst");
      const dm: ReceivedDirectMessage = await received;
      assert.equal(dm.sender, "dana");
      assert.equal(dm.text, "psst");
      assert.equal(dm.id, reply.id);
      // Sending to nobody succeeds and delivers nothing.
      await a.direct("nobody-here", "x");
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("typed payloads round trip; unknown types arrive as bytes", async () => {
    const a = await Client.connect(server.url, { name: "typed-a" }, { types });
    const b = await Client.connect(server.url, { name: "typed-b" }); // registers nothing
    try {
      const subA = await a.join("typed");
      const subB = await b.join("typed");
      const chat = create(ChatMessageSchema, {
        text: "hello @bob",
        format: Format.MARKDOWN,
        mentions: [{ user: "bob", start: 6, length: 4 }],
        attachments: [{ url: "https://example.invalid/x.png", mediaType: "image/png", sizeBytes: 12n, thumbnail: new Uint8Array([1, 2]) }],
        replyTo: 7n,
        sentAtMs: 1_700_000_000_000n,
        tags: ["edited"],
      });
      await a.publish("typed", chat);
      await a.publish("typed", { text: "typing…", value: create(TypingEventSchema, { user: "typed-a", typing: true }) });
      await a.publish("typed", { data: new Uint8Array([9, 9]), typeName: "other.v1.Unknown" });
      await a.publish("typed", "plain");

      const [m1, m2, m3, m4] = await take(subA, 4, 3000);
      assert.ok(isMessage(m1?.value, ChatMessageSchema), "decoded into the generated type");
      assert.equal(m1.value.text, "hello @bob");
      assert.equal(m1.value.mentions[0]?.user, "bob");
      assert.equal(m1.value.attachments[0]?.sizeBytes, 12n);
      assert.deepEqual(toBinary(ChatMessageSchema, m1.value), toBinary(ChatMessageSchema, chat));
      assert.equal(m1.typeName, "chat.v1.ChatMessage");
      assert.ok(isMessage(m2?.value, TypingEventSchema));
      assert.equal(m2.value.typing, true);
      assert.equal(m2.text, "typing…");
      assert.equal(m3?.value, undefined);
      assert.equal(m3?.typeName, "other.v1.Unknown");
      assert.deepEqual(m3.data, new Uint8Array([9, 9]));
      assert.equal(m4?.text, "plain");
      assert.equal(m4.value, undefined);

      // A client that registered nothing gets bytes plus type name, no error.
      const [n1] = await take(subB, 1, 3000);
      assert.equal(n1?.value, undefined);
      assert.equal(n1?.typeName, "chat.v1.ChatMessage");
      assert.deepEqual(n1.data, toBinary(ChatMessageSchema, chat));

      // History decodes typed payloads too.
      const page = await a.history("typed", { limit: 10 });
      assert.ok(isMessage(page.messages[0]?.value, ChatMessageSchema));

      // Publishing a typed message whose type is not registered is a TypeError.
      await assert.rejects(b.publish("typed", chat), TypeError);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("close: no reconnect, iterators end, later commands fail", async () => {
    const c = await Client.connect(server.url, { name: "closer" });
    const sub = await c.join("closing");
    const states: StateChange[] = [];
    c.on("state", (s) => states.push(s));
    await c.close();
    assert.deepEqual(states.map((s) => s.state), ["closed"]);
    assert.equal(states[0]?.code, 1000);
    assert.equal((await sub[Symbol.asyncIterator]().next()).done, true);
    const err = await c.publish("closing", "x").catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionError);
    assert.equal(err.temporary, false);
    await sleep(300);
    assert.deepEqual(states.map((s) => s.state), ["closed"], "nothing happens after close");
  });

  test("a custom WebSocket implementation is used", async () => {
    let made = 0;
    class Counting extends NodeWebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        made++;
      }
    }
    const c = await Client.connect(server.url, { name: "custom" }, { WebSocket: Counting });
    try {
      assert.equal(made, 1);
      assert.ok((await c.ping()).timestampMs > 0n);
    } finally {
      await c.close();
    }
  });

  test("connecting to nothing rejects with a ConnectionError", async () => {
    const err = await Client.connect("ws://127.0.0.1:9/ws", { name: "x" }).catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionError, String(err));
    assert.equal(err.temporary, false);
  });

  test("a token function is called for the connection", async () => {
    // In development mode a token is still verified; with no secret configured
    // any token is refused: the function was called and its token sent.
    let calls = 0;
    const err = await Client.connect(server.url, {
      token: () => {
        calls++;
        return Promise.resolve("not-a-jwt");
      },
    }).catch((e: unknown) => e);
    assert.equal(calls, 1);
    assert.ok(err instanceof ServerError, String(err));
    assert.equal(err.code, ErrorCode.UNAUTHORIZED);
  });
});
