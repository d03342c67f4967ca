/**
 * The HTTP server API client (`ServerApi`) against a real server with an API
 * key configured: every route in both encodings, what WebSocket clients (the
 * SDK's own `Client`) receive from it, and the errors. Transport failures and
 * non-`Error` error bodies are checked against a local stub instead.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";
import { WebSocket as NodeWebSocket } from "ws";
import type { RawData } from "ws";
import { ChatMessageSchema } from "../src/gen/chat/v1/chat_pb.js";
import {
  ApiPublishRequestSchema,
  ApiSubscribeRequestSchema,
  Client,
  ConnectionError,
  ErrorCode,
  ErrorSchema,
  PayloadSchema,
  PublishReplySchema,
  ServerApi,
  ServerApiError,
  ServerError,
  ServerFrameSchema,
  SwitchboardError,
  TimeoutError,
} from "../src/node.js";
import type { ServerApiEncoding, ServerFrame, StateChange, Subscription, WebSocketConstructor } from "../src/node.js";
import { nextEvent, rawBytes, sleep, startServer, take } from "./helpers.js";
import type { TestServer } from "./helpers.js";

const KEY = "sdk-test-api-key-0123456789abcdef";
const CONFIG = `[[api.keys]]\nname = "backend"\nkey = "${KEY}"\n`;
const PROTOBUF = "application/x-protobuf";
const JSON_TYPE = "application/json";
const encodings: readonly ServerApiEncoding[] = ["protobuf", "json"];

/** Polls `probe` every 10 ms until it returns a value; bounded. */
async function waitFor<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(10);
  }
}

/**
 * A `ws` WebSocket for `Client.connect` that also records every frame the
 * server sends, to check the wire frames behind what the client reports.
 */
function tap(): { WebSocket: WebSocketConstructor; frames: ServerFrame[] } {
  const frames: ServerFrame[] = [];
  class Tapped extends NodeWebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      this.on("message", (data: RawData) => {
        frames.push(fromBinary(ServerFrameSchema, rawBytes(data)));
      });
    }
  }
  return { WebSocket: Tapped, frames };
}

/** A raw HTTP exchange, for what `ServerApi` never sends. */
interface RawResponse {
  status: number;
  type: string;
  bytes: Uint8Array;
  headers: Headers;
}

async function raw(url: string, init: RequestInit = {}): Promise<RawResponse> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  return {
    status: res.status,
    type: (res.headers.get("Content-Type") ?? "").split(";")[0]?.trim() ?? "",
    bytes: new Uint8Array(await res.arrayBuffer()),
    headers: res.headers,
  };
}

function rawJson(r: RawResponse): Record<string, JsonValue> {
  assert.equal(r.type, JSON_TYPE);
  return JSON.parse(new TextDecoder().decode(r.bytes)) as Record<string, JsonValue>;
}

/** Decodes an `Error` body in whichever encoding the response has. */
function errorBody(r: RawResponse): { code: ErrorCode; message: string; temporary: boolean } {
  if (r.type === PROTOBUF) {
    return fromBinary(ErrorSchema, r.bytes);
  }
  assert.equal(r.type, JSON_TYPE, `error Content-Type (status ${r.status})`);
  return fromJson(ErrorSchema, JSON.parse(new TextDecoder().decode(r.bytes)) as JsonValue);
}

/** Awaits a rejection and checks it is a `ServerApiError` with `status` and `code`. */
async function apiError(p: Promise<unknown>, status: number, code: ErrorCode): Promise<ServerApiError> {
  const err = await p.then(
    (v: unknown) => {
      throw new Error(`expected HTTP ${status}, got a reply: ${JSON.stringify(v, (_, x: unknown) => (typeof x === "bigint" ? x.toString() : x))}`);
    },
    (e: unknown) => e,
  );
  assert.ok(err instanceof ServerApiError, String(err));
  assert.ok(err instanceof ServerError, "a ServerApiError is a ServerError");
  assert.equal(err.status, status, err.message);
  assert.equal(err.codeName, `ERROR_CODE_${ErrorCode[code]}`, err.message);
  assert.equal(err.code, code);
  return err;
}

describe("server api", () => {
  let server: TestServer;
  let base: string;
  before(async () => {
    server = await startServer({ config: CONFIG });
    base = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server.stop();
  });

  for (const encoding of encodings) {
    const api = (options: { apiKey?: string } = { apiKey: KEY }) =>
      new ServerApi({ baseUrl: `${base}/`, encoding, types: [ChatMessageSchema], ...options });

    test(`${encoding}: publish, idempotent publish, history paging`, async () => {
      const a = api();
      // Needs percent-encoding in a path segment: "/", "?", "#", "%", space, non-ASCII.
      const room = `hist/${encoding} ?#%ü`;
      const acks = [];
      for (let i = 1; i <= 5; i++) {
        acks.push(await a.publish(room, `m${i}`, { sender: "alice" }));
      }
      assert.deepEqual(acks.map((x) => x.offset), [1n, 2n, 3n, 4n, 5n]);
      const epoch = acks[0]?.epoch ?? "";
      assert.notEqual(epoch, "");
      for (const x of acks) {
        assert.equal(x.$typeName, "switchboard.v1.PublishReply");
        assert.equal(x.epoch, epoch);
        assert.ok(x.id > 0n && x.timestampMs > 1_600_000_000_000n, `id ${x.id} time ${x.timestampMs}`);
        assert.equal(x.duplicate, false);
      }
      assert.equal(new Set(acks.map((x) => x.id)).size, 5);

      // An idempotency key makes a retry a duplicate (same offset and id), per sender.
      const first = await a.publish(room, "once", { idempotencyKey: "idem-1" });
      const again = await a.publish(room, "once", { idempotencyKey: "idem-1" });
      assert.deepEqual([first.offset, first.duplicate], [6n, false]);
      assert.deepEqual([again.offset, again.id, again.duplicate], [6n, first.id, true]);
      const other = await a.publish(room, "once", { idempotencyKey: "idem-1", sender: "someone" });
      assert.deepEqual([other.offset, other.duplicate], [7n, false]);
      // A typed message, a Payload and a payload init are all content.
      const chat = create(ChatMessageSchema, { text: "typed", mentions: [{ user: "bob", start: 0, length: 3 }] });
      assert.equal((await a.publish(room, chat)).offset, 8n);
      assert.equal((await a.publish(room, create(PayloadSchema, { text: "payload" }))).offset, 9n);
      assert.equal((await a.publish(room, { text: "init", data: new Uint8Array([1, 2, 3]), typeName: "x.Y" })).offset, 10n);

      const all = await a.history(room);
      assert.equal(all.$typeName, "switchboard.v1.HistoryReply");
      assert.deepEqual(
        all.messages.map((m) => [m.room, m.offset, m.sender, m.payload?.text]),
        [
          [room, 1n, "alice", "m1"],
          [room, 2n, "alice", "m2"],
          [room, 3n, "alice", "m3"],
          [room, 4n, "alice", "m4"],
          [room, 5n, "alice", "m5"],
          [room, 6n, "backend", "once"], // no sender: the API key's name
          [room, 7n, "someone", "once"],
          [room, 8n, "backend", ""],
          [room, 9n, "backend", "payload"],
          [room, 10n, "backend", "init"],
        ],
      );
      assert.equal(all.hasMore, false);
      assert.deepEqual([all.position?.offset, all.position?.epoch], [10n, epoch]);
      assert.equal(all.messages[0]?.id, acks[0]?.id);
      const typed = all.messages[7]?.payload;
      const init = all.messages[9]?.payload;
      assert.deepEqual([typed?.typeName, typed?.data], ["chat.v1.ChatMessage", toBinary(ChatMessageSchema, chat)]);
      assert.deepEqual([init?.typeName, init?.data], ["x.Y", new Uint8Array([1, 2, 3])]);

      const newest = await a.history(room, { limit: 2 });
      assert.deepEqual([newest.messages.map((m) => m.offset), newest.hasMore], [[9n, 10n], true]);
      const older = await a.history(room, { limit: 2, before: 4n });
      assert.deepEqual([older.messages.map((m) => m.payload?.text), older.hasMore], [["m2", "m3"], true]);
      const oldest = await a.history(room, { limit: 2, before: 2 });
      assert.deepEqual([oldest.messages.map((m) => m.offset), oldest.hasMore], [[1n], false]);
      const forward = await a.history(room, { limit: 3, after: 5n });
      assert.deepEqual([forward.messages.map((m) => m.offset), forward.hasMore], [[6n, 7n, 8n], true]);
      const end = await a.history(room, { after: 8 });
      assert.deepEqual([end.messages.map((m) => m.offset), end.hasMore], [[9n, 10n], false]);
      assert.equal(end.position?.offset, 10n);
    });

    test(`${encoding}: room, rooms and presence`, async () => {
      const a = api();
      const room = `info-${encoding}`;
      const pat = await Client.connect(server.url, { name: `pat-${encoding}` });
      try {
        await pat.join(room);
        await a.publish(room, "one");
        const ack = await a.publish(room, "two");
        await a.publish(`info-other-${encoding}`, "x");

        const info = await a.room(room);
        assert.equal(info.$typeName, "switchboard.v1.RoomInfo");
        assert.deepEqual([info.room, info.position?.offset, info.position?.epoch, info.members], [room, 2n, ack.epoch, 1]);

        const presence = await a.presence(room);
        assert.equal(presence.$typeName, "switchboard.v1.PresenceReply");
        assert.deepEqual(
          presence.members.map((m) => [m.user, m.client]),
          [[`pat-${encoding}`, pat.connectReply?.client ?? "?"]],
        );
        assert.deepEqual((await a.presence(`empty-${encoding}`)).members, []);

        const list = await a.rooms({ limit: 1000 });
        assert.equal(list.$typeName, "switchboard.v1.ApiRoomList");
        assert.equal(list.truncated, false);
        const entry = list.rooms.find((r) => r.room === room);
        assert.deepEqual([entry?.position?.offset, entry?.members], [2n, 1]);
        assert.ok(list.rooms.some((r) => r.room === `info-other-${encoding}`));
        assert.ok(list.rooms.length >= 2);
        const one = await a.rooms({ limit: 1 });
        assert.deepEqual([one.rooms.length, one.truncated], [1, true]);
        const defaults = await a.rooms();
        assert.equal(defaults.rooms.length, list.rooms.length, "the default limit (100) covers every room here");
      } finally {
        await pat.close();
      }
    });

    test(`${encoding}: room messages, direct messages and notifications reach WebSocket clients`, async () => {
      const a = api();
      const user = `alice-${encoding}`;
      const room = `push-${encoding}`;
      const alice = await Client.connect(server.url, { name: user });
      const alice2 = await Client.connect(server.url, { name: user }); // a second connection of the user
      try {
        const sub = await alice.join(room);

        const ack = await a.publish(room, "from the backend", { sender: "deploy-bot" });
        const ack2 = await a.publish(room, "unsigned");
        const [m1, m2] = await take(sub, 2, 3000);
        assert.deepEqual(
          [m1?.room, m1?.offset, m1?.id, m1?.sender, m1?.text],
          [room, ack.offset, ack.id, "deploy-bot", "from the backend"],
        );
        assert.deepEqual([m2?.offset, m2?.sender, m2?.text], [ack2.offset, "backend", "unsigned"]);

        const dm = nextEvent(alice, "directMessage", 3000);
        const dm2 = nextEvent(alice2, "directMessage", 3000);
        const sent = await a.sendToUser(user, "psst", { sender: "ops" });
        assert.equal(sent.$typeName, "switchboard.v1.ApiSendReply");
        assert.ok(sent.id > 0n);
        for (const d of [await dm, await dm2]) {
          assert.deepEqual([d.id, d.sender, d.text], [sent.id, "ops", "psst"]);
        }
        const dmDefault = nextEvent(alice, "directMessage", 3000);
        const sentDefault = await a.sendToUser(user, { text: "typed", value: create(ChatMessageSchema, { text: "hi" }) });
        const d2 = await dmDefault;
        assert.deepEqual([d2.id, d2.sender, d2.text, d2.typeName], [sentDefault.id, "backend", "typed", "chat.v1.ChatMessage"]);
        assert.deepEqual(d2.data, toBinary(ChatMessageSchema, create(ChatMessageSchema, { text: "hi" })));

        const un = nextEvent(alice, "notification", 3000);
        const un2 = nextEvent(alice2, "notification", 3000);
        const userNote = await a.notifyUser(user, "to the user");
        assert.equal(userNote.$typeName, "switchboard.v1.ApiNotifyReply");
        for (const n of [await un, await un2]) {
          assert.deepEqual([n.id, n.room, n.text], [userNote.id, "", "to the user"]);
        }

        const rn = nextEvent(alice, "notification", 3000);
        const rnSub = nextEvent(sub, "notification", 3000);
        const roomNote = await a.notifyRoom(room, "to the room");
        assert.equal(roomNote.$typeName, "switchboard.v1.ApiNotifyReply");
        assert.notEqual(roomNote.id, userNote.id);
        for (const n of [await rn, await rnSub]) {
          assert.deepEqual([n.id, n.room, n.text], [roomNote.id, room, "to the room"]);
        }
        // alice2 is not a member: no room notification, and notifications are not stored.
        let extra = 0;
        alice2.on("notification", () => extra++);
        await sleep(200);
        assert.equal(extra, 0);
        assert.equal((await a.history(room)).messages.length, 2);
      } finally {
        await alice.close();
        await alice2.close();
      }
    });

    test(`${encoding}: subscribe pushes Subscribed then the room's messages; unsubscribe pushes Unsubscribed`, async () => {
      const a = api();
      const user = `bob-${encoding}`;
      const room = `sub-${encoding}`;
      const first = await a.publish(room, "before");
      const t = tap();
      const bob = await Client.connect(server.url, { name: user }, { WebSocket: t.WebSocket });
      const carl = await Client.connect(server.url, { name: `carl-${encoding}` });
      const announced: Subscription[] = [];
      bob.on("subscribed", (s) => announced.push(s));
      try {
        const subscribedEvent = nextEvent(bob, "subscribed", 3000);
        const accepted = await a.subscribe(user, room, { presenceEvents: true });
        assert.equal(accepted.$typeName, "switchboard.v1.ApiAccepted");
        // The client hands the subscription to its `subscribed` listeners.
        const sub = await subscribedEvent;
        assert.deepEqual(
          [sub.room, sub.active, sub.presenceEvents, sub.position.offset, sub.position.epoch],
          [room, true, true, 1n, first.epoch],
        );
        const subscribedAt = await waitFor("Subscribed push", 3000, () => {
          const i = t.frames.findIndex((f) => f.kind.case === "subscribed" && f.kind.value.room === room);
          return i < 0 ? undefined : i;
        });
        const subscribed = t.frames[subscribedAt];
        assert.equal(subscribed?.id, 0);
        assert.equal(subscribed.kind.case, "subscribed");
        assert.deepEqual(
          [subscribed.kind.value.position?.offset, subscribed.kind.value.position?.epoch, subscribed.kind.value.presenceEvents],
          [1n, first.epoch, true],
        );
        const members = await a.presence(room);
        assert.deepEqual(members.members.map((m) => m.user), [user]);
        assert.equal((await a.room(room)).members, 1);

        const ack = await a.publish(room, "after subscribe", { sender: "feed" });
        const messageAt = await waitFor("room message push", 3000, () => {
          const i = t.frames.findIndex((f) => f.kind.case === "message" && f.kind.value.room === room);
          return i < 0 ? undefined : i;
        });
        assert.ok(messageAt > subscribedAt, "Subscribed comes first");
        const message = t.frames[messageAt]?.kind;
        assert.equal(message?.case, "message");
        assert.deepEqual(
          [message.value.offset, message.value.id, message.value.sender, message.value.payload?.text],
          [2n, ack.id, "feed", "after subscribe"],
        );
        // Only the new message: "before" (offset 1) is not replayed.
        assert.equal(t.frames.filter((f) => f.kind.case === "message").length, 1);
        // ... and it is the subscription's first message.
        const [got] = await take(sub, 1, 3000);
        assert.deepEqual([got?.room, got?.offset, got?.id, got?.sender, got?.text], [room, 2n, ack.id, "feed", "after subscribe"]);

        // presenceEvents: bob hears carl join, on the subscription too.
        const joined = nextEvent(sub, "memberJoined", 3000);
        await carl.join(room);
        await waitFor("MemberJoined push", 3000, () =>
          t.frames.find(
            (f) => f.kind.case === "memberJoined" && f.kind.value.room === room && f.kind.value.member?.user === `carl-${encoding}`,
          ),
        );
        assert.equal((await joined).member?.user, `carl-${encoding}`);

        const closed = nextEvent(sub, "closed", 3000);
        assert.equal((await a.unsubscribe(user, room)).$typeName, "switchboard.v1.ApiAccepted");
        await waitFor("Unsubscribed push", 3000, () =>
          t.frames.find((f) => f.kind.case === "unsubscribed" && f.kind.value.room === room),
        );
        // The client ends the subscription as a leave would.
        assert.deepEqual(await closed, {});
        assert.equal(sub.active, false);
        await waitFor("bob gone from presence", 3000, async () => {
          const p = await a.presence(room);
          return p.members.some((m) => m.user === user) ? undefined : p;
        });
        assert.deepEqual((await a.presence(room)).members.map((m) => m.user), [`carl-${encoding}`]);
        const seen = t.frames.length;
        await a.publish(room, "after unsubscribe");
        await sleep(200);
        assert.deepEqual(
          t.frames.slice(seen).filter((f) => f.kind.case === "message").length,
          0,
          "no messages after Unsubscribed",
        );
        assert.equal(sub.buffered, 0);
        assert.equal(announced.length, 1);
        // A user with no connection: accepted, nothing to do.
        assert.equal((await a.subscribe(`nobody-${encoding}`, room)).$typeName, "switchboard.v1.ApiAccepted");
        assert.equal((await a.unsubscribe(`nobody-${encoding}`, room)).$typeName, "switchboard.v1.ApiAccepted");
        assert.equal(bob.state, "connected");
      } finally {
        await bob.close();
        await carl.close();
      }
    });

    test(`${encoding}: disconnect closes every connection of the user with 4500 (kicked, no reconnect)`, async () => {
      const a = api();
      const user = `dave-${encoding}`;
      const c1 = await Client.connect(server.url, { name: user });
      const c2 = await Client.connect(server.url, { name: user });
      const other = await Client.connect(server.url, { name: `erin-${encoding}` });
      const states: StateChange[] = [];
      c1.on("state", (s) => states.push(s));
      try {
        const closed1 = nextEvent(c1, "state", 5000, (s) => s.state === "closed");
        const closed2 = nextEvent(c2, "state", 5000, (s) => s.state === "closed");
        const accepted = await a.disconnect(user);
        assert.equal(accepted.$typeName, "switchboard.v1.ApiAccepted");
        assert.equal((await closed1).code, 4500);
        assert.equal((await closed2).code, 4500);
        await sleep(300);
        assert.deepEqual(states.map((s) => s.state), ["closed"], "no reconnect after a kick");
        assert.equal(c1.state, "closed");
        assert.equal(other.state, "connected", "other users stay");
        assert.ok((await other.ping()).timestampMs > 0n);
        // Nobody connected: still accepted.
        assert.equal((await a.disconnect(`nobody-${encoding}`)).$typeName, "switchboard.v1.ApiAccepted");
      } finally {
        await c1.close();
        await c2.close();
        await other.close();
      }
    });

    test(`${encoding}: errors are ServerApiErrors`, async () => {
      const wrong = await apiError(api({ apiKey: "not-the-key-0123456789" }).rooms(), 401, ErrorCode.UNAUTHORIZED);
      assert.equal(wrong.temporary, false);
      assert.equal(wrong.retryAfterMs, 0);
      assert.equal(wrong.name, "ServerApiError");
      await apiError(api({}).publish("r", "x"), 401, ErrorCode.UNAUTHORIZED);
      // Nothing was published without a key.
      assert.deepEqual((await api().history("r")).messages, []);

      const long = "r".repeat(300);
      const a = api();
      const invalid = await apiError(a.publish(long, "x"), 400, ErrorCode.INVALID_ROOM);
      assert.equal(invalid.temporary, false);
      await apiError(a.history(long), 400, ErrorCode.INVALID_ROOM);
      await apiError(a.notifyRoom(long, "x"), 400, ErrorCode.INVALID_ROOM);
      await apiError(a.room(long), 400, ErrorCode.INVALID_ROOM);
      await apiError(a.presence(long), 400, ErrorCode.INVALID_ROOM);
      await apiError(a.subscribe("u", long), 400, ErrorCode.INVALID_ROOM);
      await apiError(a.publish("bad\u0001room", "x"), 400, ErrorCode.INVALID_ROOM);

      // A body over limits.max_message_size (default 65536).
      await apiError(a.publish(`big-${encoding}`, "x".repeat(70_000)), 413, ErrorCode.LIMIT_EXCEEDED);
      assert.deepEqual((await a.history(`big-${encoding}`)).messages, []);
    });

    test(`${encoding}: unsupported calls fail with an Error body`, async () => {
      const accept = encoding === "json" ? JSON_TYPE : PROTOBUF;
      const auth = { Authorization: `Bearer ${KEY}`, Accept: accept };
      const unknown = await raw(`${base}/api/v1/nothing/here`, { headers: auth });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.type, accept);
      assert.equal(errorBody(unknown).code, ErrorCode.BAD_REQUEST);
      // A method no route has on an existing path.
      const method = await raw(`${base}/api/v1/rooms/x`, { method: "DELETE", headers: auth });
      assert.ok(method.status === 404 || method.status === 405, `status ${method.status}`);
      assert.equal(errorBody(method).code, ErrorCode.BAD_REQUEST);
      // Unsupported Content-Type.
      const text = await raw(`${base}/api/v1/rooms/x/messages`, {
        method: "POST",
        headers: { ...auth, "Content-Type": "text/plain" },
        body: "hello",
      });
      assert.equal(text.status, 415);
      assert.equal(errorBody(text).code, ErrorCode.BAD_REQUEST);
      // Undecodable body.
      const garbage = await raw(`${base}/api/v1/rooms/x/messages`, {
        method: "POST",
        headers: { ...auth, "Content-Type": encoding === "json" ? JSON_TYPE : PROTOBUF },
        body: encoding === "json" ? "{not json" : new Uint8Array([0xff, 0xff, 0xff]),
      });
      assert.equal(garbage.status, 400);
      assert.equal(errorBody(garbage).code, ErrorCode.BAD_REQUEST);
      // Bad query.
      const query = await raw(`${base}/api/v1/rooms/x/messages?limit=abc`, { headers: auth });
      assert.equal(query.status, 400);
      assert.equal(errorBody(query).code, ErrorCode.BAD_REQUEST);
      assert.deepEqual((await api().history("x")).messages, [], "nothing was published");
    });
  }

  test("raw HTTP: X-Api-Key, Accept, snake_case input, JSON output, empty subscribe body", async () => {
    // GET without Accept: JSON; X-Api-Key authenticates too.
    const list = await raw(`${base}/api/v1/rooms`, { headers: { "X-Api-Key": KEY } });
    assert.equal(list.status, 200);
    assert.ok(Array.isArray(rawJson(list)["rooms"]));
    const denied = await raw(`${base}/api/v1/rooms`, { headers: { "X-Api-Key": "wrong-key-0123456789abc" } });
    assert.equal(denied.status, 401);
    assert.equal(errorBody(denied).code, ErrorCode.UNAUTHORIZED);

    // snake_case JSON input, canonical JSON output (lowerCamelCase, 64-bit as strings).
    const body = JSON.stringify({ payload: { text: "snake" }, idempotency_key: "snake-1", sender: "py" });
    const post = () =>
      raw(`${base}/api/v1/rooms/raw-json/messages`, {
        method: "POST",
        headers: { Authorization: `Bearer ${KEY}`, "Content-Type": JSON_TYPE },
        body,
      });
    const r1 = rawJson(await post());
    assert.equal(r1["offset"], "1");
    assert.equal(typeof r1["id"], "string");
    assert.equal(typeof r1["timestampMs"], "string");
    assert.ok(!("timestamp_ms" in r1));
    const r2 = rawJson(await post());
    assert.deepEqual([r2["offset"], r2["duplicate"], r2["id"]], ["1", true, r1["id"]]);

    // A binary request answered in JSON because Accept asks for it, and the other way round.
    const bin = toBinary(
      ApiPublishRequestSchema,
      create(ApiPublishRequestSchema, { payload: { text: "bin" } }),
    );
    const asJson = await raw(`${base}/api/v1/rooms/raw-json/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": PROTOBUF, Accept: JSON_TYPE },
      body: bin,
    });
    assert.equal(rawJson(asJson)["offset"], "2");
    const asBinary = await raw(`${base}/api/v1/rooms/raw-json/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": JSON_TYPE, Accept: PROTOBUF },
      body: JSON.stringify(toJson(ApiPublishRequestSchema, create(ApiPublishRequestSchema, { payload: { text: "json" } }))),
    });
    assert.equal(asBinary.type, PROTOBUF);
    assert.equal(fromBinary(PublishReplySchema, asBinary.bytes).offset, 3n);
    // Without Accept, a binary request gets a binary reply.
    const same = await raw(`${base}/api/v1/rooms/raw-json/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": PROTOBUF },
      body: bin,
    });
    assert.equal(same.type, PROTOBUF);
    assert.equal(fromBinary(PublishReplySchema, same.bytes).offset, 4n);

    // PUT subscribe with an empty body, and with a snake_case JSON body.
    const empty = await raw(`${base}/api/v1/users/nobody/rooms/raw-json`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${KEY}` },
    });
    assert.equal(empty.status, 200);
    assert.deepEqual(rawJson(empty), {});
    const snake = await raw(`${base}/api/v1/users/nobody/rooms/raw-json`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": JSON_TYPE },
      body: JSON.stringify({ presence_events: true }),
    });
    assert.equal(snake.status, 200);
    const snakeBin = await raw(`${base}/api/v1/users/nobody/rooms/raw-json`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": PROTOBUF },
      body: toBinary(ApiSubscribeRequestSchema, create(ApiSubscribeRequestSchema, { presenceEvents: true })),
    });
    assert.equal(snakeBin.status, 200);
    assert.equal(snakeBin.type, PROTOBUF);
  });
});

describe("server api: modes without keys", () => {
  test("development mode without keys: the API is open", async () => {
    const server = await startServer();
    try {
      const a = new ServerApi({ baseUrl: `http://127.0.0.1:${server.port}`, encoding: "json" });
      const ack = await a.publish("open", "hi");
      assert.equal(ack.offset, 1n);
      assert.deepEqual((await a.history("open")).messages.map((m) => m.payload?.text), ["hi"]);
    } finally {
      await server.stop();
    }
  });

  test("production mode without keys: the API is off (403)", async () => {
    const server = await startServer({
      env: { SWITCHBOARD_DEVELOPMENT: "false", SWITCHBOARD_AUTH__JWT_SECRET: "a-secret-for-tests-0123456789" },
    });
    try {
      for (const encoding of encodings) {
        const a = new ServerApi({ baseUrl: `http://127.0.0.1:${server.port}`, encoding, apiKey: "whatever-0123456789abc" });
        await apiError(a.publish("closed", "hi"), 403, ErrorCode.PERMISSION_DENIED);
        await apiError(a.rooms(), 403, ErrorCode.PERMISSION_DENIED);
      }
    } finally {
      await server.stop();
    }
  });
});

describe("server api: transport and decoding", () => {
  test("every method's request: method, path, query, headers, body", async () => {
    for (const encoding of encodings) {
      const seen: { method: string; url: string; headers: Headers; body: Uint8Array | undefined }[] = [];
      const fake: typeof fetch = (input, init) => {
        const body = init?.body;
        seen.push({
          method: init?.method ?? "GET",
          url: typeof input === "string" ? input : "(not a string)",
          headers: new Headers(init?.headers),
          body: typeof body === "string" ? new TextEncoder().encode(body) : (body as Uint8Array | undefined),
        });
        const json = encoding === "json";
        return Promise.resolve(
          new Response(json ? "{}" : new Uint8Array(0), {
            status: 200,
            headers: { "Content-Type": json ? "application/json; charset=utf-8" : PROTOBUF },
          }),
        );
      };
      const a = new ServerApi({ baseUrl: "https://example.invalid/sb//", apiKey: "k", encoding, fetch: fake });
      const room = "a/b c?#%é";
      const r = encodeURIComponent(room);
      assert.equal(r, "a%2Fb%20c%3F%23%25%C3%A9");
      await a.publish(room, "p", { sender: "s", idempotencyKey: "i" });
      await a.history(room, { limit: 5, before: 9n, after: 1 });
      await a.history(room);
      await a.notifyRoom(room, "n");
      await a.presence(room);
      await a.room(room);
      await a.rooms({ limit: 7 });
      await a.sendToUser("u/1", "d", { sender: "s" });
      await a.notifyUser("u/1", "n");
      await a.subscribe("u/1", room, { presenceEvents: true });
      await a.unsubscribe("u/1", room);
      await a.disconnect("u/1");
      const p = "https://example.invalid/sb/api/v1";
      assert.deepEqual(
        seen.map((s) => `${s.method} ${s.url}`),
        [
          `POST ${p}/rooms/${r}/messages`,
          `GET ${p}/rooms/${r}/messages?limit=5&before=9&after=1`,
          `GET ${p}/rooms/${r}/messages`,
          `POST ${p}/rooms/${r}/notifications`,
          `GET ${p}/rooms/${r}/presence`,
          `GET ${p}/rooms/${r}`,
          `GET ${p}/rooms?limit=7`,
          `POST ${p}/users/u%2F1/messages`,
          `POST ${p}/users/u%2F1/notifications`,
          `PUT ${p}/users/u%2F1/rooms/${r}`,
          `DELETE ${p}/users/u%2F1/rooms/${r}`,
          `POST ${p}/users/u%2F1/disconnect`,
        ],
      );
      const type = encoding === "json" ? JSON_TYPE : PROTOBUF;
      for (const s of seen) {
        assert.equal(s.headers.get("Authorization"), "Bearer k");
        assert.equal(s.headers.get("Accept"), type);
        assert.equal(s.headers.get("Content-Type"), s.body === undefined ? null : type, `${s.method} ${s.url}`);
      }
      assert.deepEqual(
        seen.map((s) => s.body !== undefined),
        [true, false, false, true, false, false, false, true, true, true, false, false],
      );
      const publish = seen[0]?.body ?? new Uint8Array(0);
      const req =
        encoding === "json"
          ? fromJson(ApiPublishRequestSchema, JSON.parse(new TextDecoder().decode(publish)) as JsonValue)
          : fromBinary(ApiPublishRequestSchema, publish);
      assert.deepEqual([req.payload?.text, req.sender, req.idempotencyKey], ["p", "s", "i"]);
      const sub = seen[9]?.body ?? new Uint8Array(0);
      const subReq =
        encoding === "json"
          ? fromJson(ApiSubscribeRequestSchema, JSON.parse(new TextDecoder().decode(sub)) as JsonValue)
          : fromBinary(ApiSubscribeRequestSchema, sub);
      assert.equal(subReq.presenceEvents, true);
    }
  });

  test("error bodies in either encoding; Retry-After; non-Error bodies", async () => {
    const reply = (status: number, body: BodyInit, headers: Record<string, string>): typeof fetch =>
      () => Promise.resolve(new Response(body, { status, headers }));
    const unavailable = create(ErrorSchema, { code: ErrorCode.UNAVAILABLE, message: "broker down", temporary: true });
    const bin = new ServerApi({
      baseUrl: "http://x.invalid",
      fetch: reply(503, toBinary(ErrorSchema, unavailable), { "Content-Type": PROTOBUF, "Retry-After": "2" }),
    });
    const e1 = await apiError(bin.rooms(), 503, ErrorCode.UNAVAILABLE);
    assert.deepEqual([e1.temporary, e1.retryAfterMs], [true, 2000]);
    assert.match(e1.message, /ERROR_CODE_UNAVAILABLE: broker down/);

    const limited = create(ErrorSchema, { code: ErrorCode.RATE_LIMITED, message: "slow", temporary: true, retryAfterMs: 1500 });
    const json = new ServerApi({
      baseUrl: "http://x.invalid",
      encoding: "json",
      fetch: reply(429, JSON.stringify(toJson(ErrorSchema, limited)), { "Content-Type": JSON_TYPE, "Retry-After": "9" }),
    });
    const e2 = await apiError(json.publish("r", "x"), 429, ErrorCode.RATE_LIMITED);
    assert.deepEqual([e2.temporary, e2.retryAfterMs], [true, 1500]);

    const proxy = new ServerApi({
      baseUrl: "http://x.invalid",
      fetch: reply(502, "<html>bad gateway</html>", { "Content-Type": "text/html" }),
    });
    // A gateway may have forwarded the request before failing: outcome unknown.
    const e3 = await apiError(proxy.room("r"), 502, ErrorCode.OUTCOME_UNKNOWN);
    assert.equal(e3.temporary, true);
    assert.match(e3.message, /HTTP 502: <html>bad gateway/);
    const timedOut = new ServerApi({ baseUrl: "http://x.invalid", fetch: reply(504, "gateway timeout", {}) });
    const e5 = await apiError(timedOut.publish("r", "x"), 504, ErrorCode.OUTCOME_UNKNOWN);
    assert.equal(e5.temporary, true);
    const down = new ServerApi({ baseUrl: "http://x.invalid", fetch: reply(503, "down", {}) });
    assert.equal((await apiError(down.rooms(), 503, ErrorCode.UNAVAILABLE)).temporary, true);

    const odd = new ServerApi({ baseUrl: "http://x.invalid", fetch: reply(200, "hello", { "Content-Type": "text/plain" }) });
    const e4 = await odd.room("r").catch((e: unknown) => e);
    assert.ok(e4 instanceof SwitchboardError && !(e4 instanceof ServerError), String(e4));
    assert.equal(e4.temporary, false);
    assert.match(e4.message, /text\/plain/);
  });

  test("a refused connection is a temporary ConnectionError", async () => {
    const a = new ServerApi({ baseUrl: "http://127.0.0.1:9", timeoutMs: 5000 });
    const err = await a.rooms().catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionError, String(err));
    assert.equal(err.temporary, true);
    assert.match(err.message, /GET http:\/\/127\.0\.0\.1:9\/api\/v1\/rooms failed/);
  });

  test("no response within timeoutMs is a TimeoutError", async () => {
    const silent = createServer(() => {
      // Never answers.
    });
    await new Promise<void>((res) => silent.listen(0, "127.0.0.1", res));
    try {
      const port = (silent.address() as AddressInfo).port;
      const a = new ServerApi({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 200 });
      const started = Date.now();
      const err = await a.history("r").catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      assert.ok(err instanceof TimeoutError, String(err));
      assert.deepEqual([err.command, err.timeoutMs, err.temporary], ["history", 200, true]);
      assert.ok(elapsed >= 150 && elapsed < 3000, `took ${elapsed} ms`);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((res) => silent.close(() => res()));
    }
  });
});
