/**
 * Server-side subscriptions against a real server in development mode (the
 * HTTP API is open without a key): a backend subscribes a user's connections
 * to a room (`Subscribed` push) and the client hands the subscription to its
 * `subscribed` listeners; the room's messages arrive on it; `Unsubscribed`
 * ends it; it is rejoined with `since` after a reconnect; and a `Subscribed`
 * push that overtakes the client's own join or rejoin of the room stands for
 * its reply.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { WebSocket as NodeWebSocket } from "ws";
import type { RawData } from "ws";
import {
  Client,
  ClientFrameSchema,
  ErrorCode,
  ServerApi,
  ServerError,
  ServerFrameSchema,
  Subscription,
} from "../src/node.js";
import type { ServerFrame, WebSocketConstructor } from "../src/node.js";
import { testHooks } from "../src/internal.js";
import { nextEvent, rawBytes, sleep, startServer, take, withTimeout } from "./helpers.js";
import type { TestServer } from "./helpers.js";

function hooks(client: Client) {
  const h = testHooks.get(client);
  assert.ok(h, "test hooks are registered for every client");
  return h;
}

/** A JSON `ServerApi` without a key (development mode). */
function serverApi(server: TestServer): ServerApi {
  return new ServerApi({ baseUrl: `http://127.0.0.1:${server.port}`, encoding: "json" });
}

/** Collects the subscriptions the client announces. */
function announcements(client: Client): Subscription[] {
  const out: Subscription[] = [];
  client.on("subscribed", (sub) => out.push(sub));
  return out;
}

/** Polls `probe` every 10 ms until it is true; bounded. */
async function until(what: string, ms: number, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await sleep(10);
  }
}

/** What the rest of an ended subscription's iterator yields (bounded). */
async function rest(sub: Subscription): Promise<bigint[]> {
  const out: bigint[] = [];
  await withTimeout(
    (async () => {
      for await (const m of sub) out.push(m.offset);
    })(),
    3000,
    "the iterator to finish",
  );
  return out;
}

/**
 * A `ws` WebSocket that records the frames the server sends and, while
 * `holdJoins` is set, holds back the client's `join` frames until
 * `release()`: the way to let a backend's subscription reach the server
 * before the client's own join of the room.
 */
interface Gate {
  WebSocket: WebSocketConstructor;
  received: ServerFrame[];
  held: number;
  holdJoins: boolean;
  release(): void;
}

function gate(): Gate {
  const waiting: (() => void)[] = [];
  const g: Gate = {
    WebSocket: NodeWebSocket,
    received: [],
    get held() {
      return waiting.length;
    },
    holdJoins: false,
    release() {
      g.holdJoins = false;
      for (const send of waiting.splice(0)) send();
    },
  };
  class Gated extends NodeWebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      this.on("message", (data: RawData) => {
        g.received.push(fromBinary(ServerFrameSchema, rawBytes(data)));
      });
      const send = this.send.bind(this);
      this.send = ((data: Uint8Array) => {
        if (g.holdJoins && fromBinary(ClientFrameSchema, data).command.case === "join") {
          waiting.push(() => {
            send(data);
          });
        } else {
          send(data);
        }
      }) as typeof this.send;
    }
  }
  g.WebSocket = Gated;
  return g;
}

test("a backend subscription is announced, delivers the room's messages, and Unsubscribed ends it", { timeout: 30_000 }, async () => {
  const server = await startServer();
  const api = serverApi(server);
  const user = "sam";
  const room = "feed";
  const c = await Client.connect(server.url, { name: user });
  const other = await Client.connect(server.url, { name: "olga" });
  const announced = announcements(c);
  const otherAnnounced = announcements(other);
  try {
    const before = await api.publish(room, "before");
    assert.equal(before.offset, 1n);
    const next = nextEvent(c, "subscribed", 3000);
    await api.subscribe(user, room);
    const sub = await next;
    assert.ok(sub instanceof Subscription);
    assert.deepEqual([sub.room, sub.active, sub.presenceEvents, sub.recovered], [room, true, false, false]);
    assert.deepEqual([sub.position.offset, sub.position.epoch], [1n, before.epoch]);
    assert.deepEqual(
      (await api.presence(room)).members.map((m) => [m.user, m.client]),
      [[user, c.connectReply?.client ?? "?"]],
    );

    const heard: string[] = [];
    sub.on("message", (m) => heard.push(m.text));
    const ack = await api.publish(room, "hello", { sender: "feed-bot" });
    const [m] = await take(sub, 1, 3000);
    assert.deepEqual([m?.room, m?.offset, m?.id, m?.sender, m?.text], [room, 2n, ack.id, "feed-bot", "hello"]);
    // A member like after a join: it publishes, and receives its own message once.
    const own = await sub.publish("mine");
    assert.equal(own.offset, 3n);
    assert.deepEqual((await take(sub, 1, 3000)).map((x) => [x.offset, x.text, x.sender]), [[3n, "mine", user]]);
    // Joining the room again is refused; the subscription goes on.
    await assert.rejects(c.join(room), (e) => e instanceof ServerError && e.code === ErrorCode.ALREADY_JOINED);
    assert.equal(sub.active, true);
    await api.publish(room, "still here");
    assert.deepEqual((await take(sub, 1, 3000)).map((x) => x.text), ["still here"]);

    const closed = nextEvent(sub, "closed", 3000);
    await api.unsubscribe(user, room);
    assert.deepEqual(await closed, {});
    assert.equal(sub.active, false);
    assert.deepEqual(await rest(sub), [], "the iterator completes");
    await api.publish(room, "after unsubscribe"); // offset 5
    await sleep(200);
    assert.deepEqual(heard, ["hello", "mine", "still here"], "nothing after Unsubscribed");

    // The room is no longer the client's: a join works and starts afresh.
    const again = await c.join(room);
    assert.notEqual(again, sub);
    assert.deepEqual([again.active, again.position.offset], [true, 5n]);
    await api.publish(room, "joined again");
    assert.deepEqual((await take(again, 1, 3000)).map((x) => [x.offset, x.text]), [[6n, "joined again"]]);
    // Unsubscribed ends a subscription the app joined itself, too.
    const againClosed = nextEvent(again, "closed", 3000);
    await api.unsubscribe(user, room);
    await againClosed;
    assert.equal(again.active, false);
    await assert.rejects(c.leave(room), (e) => e instanceof ServerError && e.code === ErrorCode.NOT_JOINED);

    assert.deepEqual(announced, [sub], "announced once");
    assert.deepEqual(otherAnnounced, [], "other users are not subscribed");
    assert.equal(c.state, "connected");
  } finally {
    await c.close();
    await other.close();
    await server.stop();
  }
  assert.equal(c.state, "closed");
});

test("a backend subscription for a room the client joined itself is not announced", { timeout: 30_000 }, async () => {
  const server = await startServer();
  const api = serverApi(server);
  const c = await Client.connect(server.url, { name: "jo" });
  const announced = announcements(c);
  try {
    const sub = await c.join("mine");
    await api.subscribe("jo", "mine");
    await api.publish("mine", "one");
    assert.deepEqual((await take(sub, 1, 3000)).map((m) => [m.offset, m.text]), [[1n, "one"]]);
    await sleep(200);
    assert.deepEqual(announced, []);
    assert.equal(sub.buffered, 0, "delivered once");
    assert.equal(sub.active, true);
  } finally {
    await c.close();
    await server.stop();
  }
});

test("a backend subscription that overtakes the client's own join stands for its reply", { timeout: 30_000 }, async () => {
  const server = await startServer();
  const api = serverApi(server);
  const g = gate();
  const c = await Client.connect(server.url, { name: "kim" }, { WebSocket: g.WebSocket });
  const announced = announcements(c);
  try {
    const first = await api.publish("race", "before");
    g.holdJoins = true;
    const joining = c.join("race");
    await until("the join to be held", 3000, () => g.held === 1);
    await api.subscribe("kim", "race", { presenceEvents: true });
    await until("the Subscribed push", 3000, () =>
      g.received.some((f) => f.kind.case === "subscribed" && f.kind.value.room === "race"),
    );
    g.release();
    const sub = await withTimeout(joining, 5000, "the join");
    // The server refused the join itself; the subscription is live anyway.
    await until("the join's ALREADY_JOINED", 3000, () =>
      g.received.some((f) => f.kind.case === "error" && f.kind.value.code === ErrorCode.ALREADY_JOINED),
    );
    assert.deepEqual([sub.room, sub.active, sub.position.offset, sub.position.epoch], ["race", true, 1n, first.epoch]);
    assert.equal(sub.presenceEvents, true, "the membership is the backend's");
    assert.deepEqual(announced, [], "the app's own join is not announced");
    await api.publish("race", "after");
    assert.deepEqual((await take(sub, 1, 3000)).map((m) => [m.offset, m.text]), [[2n, "after"]]);
    await c.leave("race");
    assert.equal(sub.active, false);
  } finally {
    await c.close();
    await server.stop();
  }
});

test("a backend subscription survives a reconnect: rejoined with since, the missed message once", { timeout: 30_000 }, async () => {
  const server = await startServer();
  const api = serverApi(server);
  const user = "rae";
  const room = "durable";
  const c = await Client.connect(server.url, { name: user }, { backoff: { baseMs: 400 } });
  const other = await Client.connect(server.url, { name: "ruth" });
  const announced = announcements(c);
  try {
    // Jitter at its top: the client stays away ~400 ms, long enough to miss a message.
    hooks(c).setRandom(() => 0.999);
    const next = nextEvent(c, "subscribed", 3000);
    await api.subscribe(user, room, { presenceEvents: true });
    const sub = await next;
    assert.equal(sub.presenceEvents, true);
    const first = await api.publish(room, "1");
    assert.deepEqual((await take(sub, 1, 3000)).map((m) => [m.offset, m.text]), [[1n, "1"]]);
    const heard: bigint[] = [];
    sub.on("message", (m) => heard.push(m.offset));
    const firstClient = c.connectReply?.client;

    const rejoined = nextEvent(sub, "rejoined", 10_000);
    const connected = nextEvent(c, "state", 10_000, (s) => s.state === "connected");
    assert.ok(hooks(c).dropConnection());
    assert.equal(c.state, "reconnecting");
    const missed = await api.publish(room, "missed while away");
    assert.equal(missed.offset, 2n);
    const r = await rejoined;
    assert.deepEqual([r.recovered, r.missed, r.position.offset, r.position.epoch], [true, 1, 2n, first.epoch]);
    await connected;
    assert.notEqual(c.connectReply?.client, firstClient, "a new connection");
    // The new connection is a member again.
    assert.ok((await api.presence(room)).members.some((m) => m.client === c.connectReply?.client));

    await api.publish(room, "live");
    assert.deepEqual(
      (await take(sub, 2, 5000)).map((m) => [m.offset, m.text]),
      [
        [2n, "missed while away"],
        [3n, "live"],
      ],
    );
    await sleep(300);
    assert.equal(sub.buffered, 0, "no duplicate arrived");
    assert.deepEqual(heard, [2n, 3n]);
    assert.deepEqual(announced, [sub], "not announced again after the reconnect");
    assert.equal(sub.active, true);
    // The rejoin asked for presence events, as the backend did.
    const joined = nextEvent(sub, "memberJoined", 3000);
    await other.join(room);
    assert.equal((await joined).member?.user, "ruth");
  } finally {
    await c.close();
    await other.close();
    await server.stop();
  }
});

test("a backend subscription that overtakes a rejoin stands for its reply (recovery failed)", { timeout: 30_000 }, async () => {
  const server = await startServer();
  const api = serverApi(server);
  const g = gate();
  const c = await Client.connect(server.url, { name: "lee" }, { WebSocket: g.WebSocket, backoff: { baseMs: 50 } });
  const announced = announcements(c);
  try {
    const next = nextEvent(c, "subscribed", 3000);
    await api.subscribe("lee", "lossy");
    const sub = await next;
    await api.publish("lossy", "1");
    assert.deepEqual((await take(sub, 1, 3000)).map((m) => m.offset), [1n]);

    g.holdJoins = true;
    const failed = nextEvent(sub, "recoveryFailed", 10_000);
    const rejoined = nextEvent(sub, "rejoined", 10_000);
    const connected = nextEvent(c, "state", 10_000, (s) => s.state === "connected");
    assert.ok(hooks(c).dropConnection());
    await until("the rejoin to be held", 5000, () => g.held === 1);
    await api.publish("lossy", "2"); // the new connection is not a member yet
    await api.subscribe("lee", "lossy");
    const f = await failed;
    assert.deepEqual([f.since.offset, f.position.offset], [1n, 2n]);
    const r = await rejoined;
    assert.deepEqual([r.recovered, r.missed], [false, 0]);
    assert.notEqual(c.state, "connected", "still rejoining");
    g.release();
    await connected;
    await until("the rejoin's ALREADY_JOINED", 3000, () =>
      g.received.some((x) => x.kind.case === "error" && x.kind.value.code === ErrorCode.ALREADY_JOINED),
    );
    assert.equal(sub.active, true, "the refused rejoin does not end the subscription");
    await api.publish("lossy", "3");
    assert.deepEqual((await take(sub, 1, 3000)).map((m) => [m.offset, m.text]), [[3n, "3"]]);
    assert.deepEqual(announced, [sub]);
  } finally {
    await c.close();
    await server.stop();
  }
});
