/**
 * Conformance scenarios (tests/scenarios/*.json): each one replayed through
 * the SDK's public API against a fresh server, with the matching rules of
 * proto/switchboard/testing/v1/scenario.proto. `drop_connection` uses the
 * internal test hook (src/internal.ts), so recovery is the SDK's own
 * reconnect + rejoin-with-since + dedupe.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import type { DescMessage, JsonObject, JsonValue, Message } from "@bufbuild/protobuf";
import { ChatMessageSchema, TypingEventSchema } from "../src/gen/chat/v1/chat_pb.js";
import type { ExpectPush, Scenario, Step } from "../src/gen/switchboard/testing/v1/scenario_pb.js";
import { ExpectPushSchema, HistorySchema, ScenarioSchema, StepSchema } from "../src/gen/switchboard/testing/v1/scenario_pb.js";
import {
  Client,
  DirectMessageSchema,
  ErrorCode,
  MemberJoinedSchema,
  MemberLeftSchema,
  NotificationSchema,
  RoomMessageSchema,
  ServerError,
  errorCodeName,
} from "../src/node.js";
import type {
  Content,
  MemberJoined,
  MemberLeft,
  Payload,
  ReceivedDirectMessage,
  ReceivedMessage,
  ReceivedNotification,
  ReceivedPayload,
  Subscription,
} from "../src/node.js";
import { testHooks } from "../src/internal.js";
import { allTypes } from "./registry.js";
import { nextEvent, repoRoot, sleep, startServer } from "./helpers.js";
import type { TestServer } from "./helpers.js";

const dir = process.env["SWITCHBOARD_SCENARIOS_DIR"] ?? join(repoRoot(), "tests", "scenarios");
const appTypes = [ChatMessageSchema, TypingEventSchema];
const DEFAULT_PUSH_TIMEOUT_MS = 5000;
const DEFAULT_NO_PUSH_MS = 300;
const RECONNECT_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------
// Matching

/** The raw JSON value of a field, under its JSON name or its proto name. */
function rawField(raw: JsonObject, desc: DescMessage, localName: string): JsonValue | undefined {
  const field = desc.fields.find((f) => f.localName === localName);
  if (!field) {
    throw new Error(`${desc.typeName} has no field ${localName}`);
  }
  return raw[field.jsonName] ?? raw[field.name];
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function canon(desc: DescMessage, message: Message): JsonObject {
  return toJson(desc, message, { alwaysEmitImplicit: true, registry: allTypes }) as JsonObject;
}

/**
 * Compares the keys present in `raw` (an expected message in proto3 JSON)
 * with `actual`; returns a description of the first difference.
 */
function mismatch(desc: DescMessage, raw: JsonObject, actual: Message, path = ""): string | undefined {
  const expected = fromJson(desc, raw, { registry: allTypes });
  return compare(desc, raw, canon(desc, expected), canon(desc, actual), path || desc.typeName);
}

function compare(
  desc: DescMessage,
  raw: JsonObject,
  expected: JsonObject,
  actual: JsonObject,
  path: string,
): string | undefined {
  for (const key of Object.keys(raw)) {
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    if (!field) {
      return `${path}.${key}: no such field in ${desc.typeName}`;
    }
    const at = `${path}.${field.jsonName}`;
    const rawValue = raw[key];
    const e = expected[field.jsonName];
    const a = actual[field.jsonName];
    if (field.fieldKind === "message" && isObject(rawValue)) {
      const fallback = canon(field.message, create(field.message));
      const d = compare(
        field.message,
        rawValue,
        isObject(e) ? e : fallback,
        isObject(a) ? a : fallback,
        at,
      );
      if (d) return d;
      continue;
    }
    if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(rawValue)) {
      const ea = Array.isArray(e) ? e : [];
      const aa = Array.isArray(a) ? a : [];
      if (aa.length !== rawValue.length) {
        return `${at}: expected ${rawValue.length} elements, got ${aa.length}: ${JSON.stringify(a)}`;
      }
      for (let i = 0; i < rawValue.length; i++) {
        const r = rawValue[i];
        const ei = ea[i];
        const ai = aa[i];
        if (!isObject(r) || !isObject(ei) || !isObject(ai)) {
          return `${at}[${i}]: not a message`;
        }
        const d = compare(field.message, r, ei, ai, `${at}[${i}]`);
        if (d) return d;
      }
      continue;
    }
    try {
      assert.deepStrictEqual(a ?? null, e ?? null);
    } catch {
      return `${at}: expected ${JSON.stringify(e)}, got ${JSON.stringify(a)}`;
    }
  }
  return undefined;
}

/** The typed-payload rule: a registered type must arrive decoded, re-encoding to the expected bytes. */
function typedMismatch(rawPayload: JsonValue | undefined, received: ReceivedPayload, path: string): string | undefined {
  if (!isObject(rawPayload)) {
    return undefined;
  }
  const expected = fromJson(
    allTypes.getMessage("switchboard.v1.Payload") as DescMessage,
    rawPayload,
  ) as unknown as Payload;
  const schema = appTypes.find((s) => s.typeName === expected.typeName);
  if (!schema) {
    return undefined;
  }
  if (received.value === undefined || received.value.$typeName !== expected.typeName) {
    return `${path}.payload: expected a decoded ${expected.typeName} value, got ${received.value?.$typeName ?? "none"}`;
  }
  const bytes = toBinary(schema as DescMessage, received.value);
  if (Buffer.compare(Buffer.from(bytes), Buffer.from(expected.data)) !== 0) {
    return `${path}.payload: the decoded ${expected.typeName} re-encodes to ${Buffer.from(bytes).toString("hex")}, expected ${Buffer.from(expected.data).toString("hex")}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Push streams

type Push =
  | { kind: "message"; value: ReceivedMessage }
  | { kind: "directMessage"; value: ReceivedDirectMessage }
  | { kind: "notification"; value: ReceivedNotification }
  | { kind: "memberJoined"; value: MemberJoined }
  | { kind: "memberLeft"; value: MemberLeft };

/** One stream's pushes, in arrival order, with waiting readers. */
class Stream {
  readonly items: Push[] = [];
  private waiter: (() => void) | undefined;

  add(push: Push): void {
    this.items.push(push);
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async next(timeoutMs: number): Promise<Push | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) {
        return undefined;
      }
      await new Promise<void>((res) => {
        const timer = setTimeout(res, left);
        this.waiter = () => {
          clearTimeout(timer);
          res();
        };
      });
    }
    return this.items.shift();
  }
}

function streamKey(kind: Push["kind"], room: string): string {
  switch (kind) {
    case "message":
      return `messages of room "${room}"`;
    case "memberJoined":
    case "memberLeft":
      return `presence of room "${room}"`;
    case "notification":
      return room === "" ? "notifications of the user" : `notifications of room "${room}"`;
    case "directMessage":
      return "direct messages";
  }
}

function describePush(p: Push): string {
  switch (p.kind) {
    case "message":
      return `message ${JSON.stringify(toJson(RoomMessageSchema, p.value.raw))}`;
    case "directMessage":
      return `direct message ${JSON.stringify(toJson(DirectMessageSchema, p.value.raw))}`;
    case "notification":
      return `notification ${JSON.stringify(toJson(NotificationSchema, p.value.raw))}`;
    case "memberJoined":
      return `member joined ${JSON.stringify(toJson(MemberJoinedSchema, p.value))}`;
    case "memberLeft":
      return `member left ${JSON.stringify(toJson(MemberLeftSchema, p.value))}`;
  }
}

/** A scenario client: the SDK client and everything it received. */
class Actor {
  readonly streams = new Map<string, Stream>();
  readonly subs = new Map<string, Subscription>();
  readonly failures: string[] = [];
  /**
   * After `drop_connection`: settles once the client is connected again and
   * has rejoined its rooms. The client's next step waits for it, so that step
   * runs on the new connection (as in the Rust runner), while other clients
   * act during the outage.
   */
  recovering: Promise<unknown> | undefined;

  constructor(readonly client: Client) {
    client.on("directMessage", (m) => this.record({ kind: "directMessage", value: m }, ""));
    client.on("notification", (n) => this.record({ kind: "notification", value: n }, n.room));
  }

  stream(key: string): Stream {
    let s = this.streams.get(key);
    if (!s) {
      s = new Stream();
      this.streams.set(key, s);
    }
    return s;
  }

  record(push: Push, room: string): void {
    this.stream(streamKey(push.kind, room)).add(push);
  }

  /** Collects a subscription's messages (through its iterator) and presence events. */
  follow(sub: Subscription): void {
    this.subs.set(sub.room, sub);
    sub.on("memberJoined", (e) => this.record({ kind: "memberJoined", value: e }, sub.room));
    sub.on("memberLeft", (e) => this.record({ kind: "memberLeft", value: e }, sub.room));
    void (async () => {
      try {
        for await (const m of sub) {
          this.record({ kind: "message", value: m }, sub.room);
        }
      } catch (err) {
        this.failures.push(`subscription ${sub.room} ended with ${String(err)}`);
      }
    })();
  }
}

// ---------------------------------------------------------------------------
// Running a scenario

/** Runs `action`, checking that it fails with `code` when `code` is set. */
async function expectOutcome<T>(code: ErrorCode, action: () => Promise<T>): Promise<T | undefined> {
  if (code === ErrorCode.UNSPECIFIED) {
    return action();
  }
  try {
    await action();
  } catch (err) {
    if (err instanceof ServerError) {
      assert.equal(
        errorCodeName(err.code),
        errorCodeName(code),
        `expected ${errorCodeName(code)}, got ${err.message}`,
      );
      return undefined;
    }
    throw new Error(`expected ${errorCodeName(code)}, got ${String(err)}`, { cause: err });
  }
  throw new Error(`expected ${errorCodeName(code)}, but it succeeded`);
}

/** A payload as SDK content: text as a string, registered types through the typed API. */
function content(payload: Payload | undefined): Content {
  if (!payload) {
    return "";
  }
  const schema = appTypes.find((s) => s.typeName === payload.typeName) as DescMessage | undefined;
  if (schema) {
    const value = fromBinary(schema, payload.data);
    return payload.text === "" ? value : { text: payload.text, value };
  }
  if (payload.typeName === "" && payload.data.length === 0) {
    return payload.text;
  }
  return { text: payload.text, data: payload.data, typeName: payload.typeName };
}

async function runStep(
  server: TestServer,
  actors: Map<string, Actor>,
  step: Step,
  raw: JsonObject,
): Promise<void> {
  const actor = (): Actor => {
    const a = actors.get(step.client);
    if (!a) {
      throw new Error(`client "${step.client}" has not connected`);
    }
    return a;
  };
  const current = actors.get(step.client);
  if (current?.recovering) {
    await current.recovering;
    current.recovering = undefined;
  }
  const action = step.action;
  switch (action.case) {
    case "connect": {
      const c = action.value;
      const client = await expectOutcome(c.expectError, () =>
        Client.connect(server.url, { name: c.name }, { types: appTypes, commandTimeoutMs: 5000 }),
      );
      if (client) {
        const previous = actors.get(step.client);
        if (previous) {
          await previous.client.close();
        }
        actors.set(step.client, new Actor(client));
      }
      return;
    }
    case "join": {
      const j = action.value;
      const a = actor();
      const sub = await expectOutcome(j.expectError, () =>
        a.client.join(j.room, {
          presenceEvents: j.presenceEvents,
          ...(j.since ? { since: { offset: j.since.offset, epoch: j.since.epoch } } : {}),
        }),
      );
      if (sub) {
        if (j.expectRecovered !== undefined) {
          assert.equal(sub.recovered, j.expectRecovered, "join reply's recovered flag");
        }
        a.follow(sub);
      }
      return;
    }
    case "leave": {
      const l = action.value;
      const a = actor();
      await expectOutcome(l.expectError, () => a.client.leave(l.room));
      if (l.expectError === ErrorCode.UNSPECIFIED) {
        a.subs.delete(l.room);
      }
      return;
    }
    case "publish": {
      const p = action.value;
      const a = actor();
      const ack = await expectOutcome(p.expectError, () =>
        a.client.publish(p.room, content(p.payload), p.idempotencyKey ? { idempotencyKey: p.idempotencyKey } : {}),
      );
      if (ack) {
        if (p.expectOffset !== 0n) {
          assert.equal(ack.offset, p.expectOffset, "acknowledged offset");
        }
        assert.equal(ack.duplicate, p.expectDuplicate, "acknowledgement's duplicate flag");
      }
      return;
    }
    case "direct": {
      const d = action.value;
      const a = actor();
      await expectOutcome(d.expectError, () => a.client.direct(d.user, content(d.payload)));
      return;
    }
    case "history": {
      const h = action.value;
      const a = actor();
      const page = await expectOutcome(h.expectError, () =>
        a.client.history(h.room, { limit: h.limit, before: h.before, after: h.after }),
      );
      if (page) {
        const rawHistory = rawField(raw, StepSchema, "history") as JsonObject;
        const rawMessages = (rawField(rawHistory, HistorySchema, "expectMessages") ?? []) as JsonValue[];
        assert.equal(
          page.messages.length,
          rawMessages.length,
          `history page: expected ${rawMessages.length} messages, got ${page.messages.map((m) => JSON.stringify(toJson(RoomMessageSchema, m.raw))).join(", ")}`,
        );
        rawMessages.forEach((r, i) => {
          const got = page.messages[i] as ReceivedMessage;
          const d =
            mismatch(RoomMessageSchema, r as JsonObject, got.raw, `history[${i}]`) ??
            typedMismatch(rawField(r as JsonObject, RoomMessageSchema, "payload"), got, `history[${i}]`);
          assert.equal(d, undefined, d);
        });
        assert.equal(page.hasMore, h.expectHasMore, "history has_more");
      }
      return;
    }
    case "presence": {
      const p = action.value;
      const a = actor();
      const members = await expectOutcome(p.expectError, () => a.client.presence(p.room));
      if (members) {
        assert.deepStrictEqual(
          members.map((m) => m.user).sort(),
          [...p.expectUsers].sort(),
          "presence users",
        );
      }
      return;
    }
    case "expectPush":
      await expectPush(actor(), action.value, rawField(raw, StepSchema, "expectPush") as JsonObject);
      return;
    case "expectNoPush": {
      const a = actor();
      await sleep(action.value.waitMs || DEFAULT_NO_PUSH_MS);
      const left: string[] = [];
      for (const [key, s] of a.streams) {
        for (const p of s.items) {
          left.push(`${key}: ${describePush(p)}`);
        }
      }
      assert.deepStrictEqual(left, [], "expected no push");
      return;
    }
    case "dropConnection": {
      const a = actor();
      const hooks = testHooks.get(a.client);
      // "connected" follows the connect reply and every rejoin.
      const connected = nextEvent(a.client, "state", RECONNECT_TIMEOUT_MS, (s) => s.state === "connected");
      connected.catch(() => undefined); // Reported by the step that awaits it, if any.
      assert.ok(hooks?.dropConnection(), "there was no connection to drop");
      a.recovering = connected;
      return;
    }
    case "close": {
      const a = actor();
      await a.client.close();
      return;
    }
    case undefined:
      throw new Error("step has no action");
  }
}

async function expectPush(a: Actor, e: ExpectPush, raw: JsonObject): Promise<void> {
  const push = e.push;
  if (push.case === undefined) {
    throw new Error("expect_push names no push");
  }
  const rawPush = rawField(raw, ExpectPushSchema, push.case) as JsonObject;
  const room = push.case === "directMessage" ? "" : push.value.room;
  const key = streamKey(push.case, room);
  const got = await a.stream(key).next(e.timeoutMs || DEFAULT_PUSH_TIMEOUT_MS);
  if (!got) {
    const failures = a.failures.length ? ` (${a.failures.join("; ")})` : "";
    assert.fail(`no push on ${key} within ${e.timeoutMs || DEFAULT_PUSH_TIMEOUT_MS} ms; expected ${push.case} ${JSON.stringify(rawPush)}${failures}`);
  }
  assert.equal(got.kind, push.case, `expected ${push.case} ${JSON.stringify(rawPush)}, got ${describePush(got)}`);
  let d: string | undefined;
  switch (got.kind) {
    case "message":
      d =
        mismatch(RoomMessageSchema, rawPush, got.value.raw) ??
        typedMismatch(rawField(rawPush, RoomMessageSchema, "payload"), got.value, "message");
      break;
    case "directMessage":
      d =
        mismatch(DirectMessageSchema, rawPush, got.value.raw) ??
        typedMismatch(rawField(rawPush, DirectMessageSchema, "payload"), got.value, "direct_message");
      break;
    case "notification":
      d =
        mismatch(NotificationSchema, rawPush, got.value.raw) ??
        typedMismatch(rawField(rawPush, NotificationSchema, "payload"), got.value, "notification");
      break;
    case "memberJoined":
      d = mismatch(MemberJoinedSchema, rawPush, got.value);
      break;
    case "memberLeft":
      d = mismatch(MemberLeftSchema, rawPush, got.value);
      break;
  }
  assert.equal(d, undefined, `${d ?? ""} (got ${describePush(got)})`);
}

async function runScenario(scenario: Scenario, raw: JsonObject): Promise<void> {
  const server = await startServer();
  const actors = new Map<string, Actor>();
  const rawSteps = (rawField(raw, ScenarioSchema, "steps") ?? []) as JsonObject[];
  try {
    for (const [i, step] of scenario.steps.entries()) {
      try {
        await runStep(server, actors, step, rawSteps[i] as JsonObject);
      } catch (err) {
        const what = JSON.stringify(rawSteps[i]);
        throw new Error(`step ${i + 1} (${step.client}: ${what}) failed: ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
        });
      }
    }
  } finally {
    await Promise.all([...actors.values()].map((a) => a.client.close()));
    await server.stop();
  }
}

// ---------------------------------------------------------------------------

const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")).sort() : [];

test("scenarios: the suite is not empty", () => {
  assert.ok(files.length > 0, `no scenario files in ${dir}`);
});

for (const file of files) {
  const raw = JSON.parse(readFileSync(join(dir, file), "utf8")) as JsonObject;
  const scenario = fromJson(ScenarioSchema, raw, { registry: allTypes });
  test(`scenario ${scenario.name || file}`, { timeout: 60_000 }, async () => {
    assert.equal(`${scenario.name}.json`, file, "a scenario's name is its file's stem");
    assert.ok(scenario.steps.length > 0, "the scenario has no steps");
    await runScenario(scenario, raw);
  });
}
