import { create, createRegistry, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import type { DescMessage, JsonValue, MessageShape, Registry } from "@bufbuild/protobuf";
import { ConnectionError, ServerError, SwitchboardError, TimeoutError } from "./errors.js";
import type {
  ApiAccepted,
  ApiNotifyReply,
  ApiRoomList,
  ApiSendReply,
  RoomInfo,
} from "./gen/switchboard/v1/api_pb.js";
import {
  ApiAcceptedSchema,
  ApiNotifyReplySchema,
  ApiNotifyRequestSchema,
  ApiPublishRequestSchema,
  ApiRoomListSchema,
  ApiSendReplySchema,
  ApiSendRequestSchema,
  ApiSubscribeRequestSchema,
  RoomInfoSchema,
} from "./gen/switchboard/v1/api_pb.js";
import type { HistoryReply, PresenceReply, PublishReply } from "./gen/switchboard/v1/commands_pb.js";
import {
  HistoryReplySchema,
  PresenceReplySchema,
  PublishReplySchema,
} from "./gen/switchboard/v1/commands_pb.js";
import { ErrorCode, ErrorSchema } from "./gen/switchboard/v1/errors_pb.js";
import type { Content } from "./payload.js";
import { PayloadCodec } from "./payload.js";

/** Body encoding of the HTTP server API. */
export type ServerApiEncoding = "protobuf" | "json";

/** Options of {@link ServerApi}. */
export interface ServerApiOptions {
  /**
   * The server's HTTP address, e.g. `http://127.0.0.1:8080` (a path prefix
   * such as `https://example.com/switchboard` is kept; `/api/v1/…` is appended).
   */
  baseUrl: string;
  /** API key from the server's `[[api.keys]]`, sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Request and response bodies: binary protobuf (default) or proto3 JSON. */
  encoding?: ServerApiEncoding;
  /** The `fetch` implementation. Default: the global `fetch` (Node ≥ 18, browsers). */
  fetch?: typeof fetch;
  /** Time allowed for each request, response body included. Default 10000 ms. */
  timeoutMs?: number;
  /**
   * Application message types that may be sent as payloads (e.g.
   * `[ChatMessageSchema]`), or a registry of them, as in `ClientOptions.types`.
   */
  types?: readonly DescMessage[] | Registry;
}

/** Options of {@link ServerApi.publish}. */
export interface ApiPublishOptions {
  /** The sender to stamp on the message; default: the API key's name. */
  sender?: string;
  /** At most 256 bytes; a repeated publish with the same key (and sender) is answered as a duplicate. */
  idempotencyKey?: string;
}

/** Options of {@link ServerApi.history}. */
export interface ApiHistoryOptions {
  /** Page size; absent: the server's default. */
  limit?: number;
  /** Only messages with a smaller offset (exclusive). */
  before?: bigint | number;
  /** Only messages with a larger offset (exclusive); pages forward. */
  after?: bigint | number;
}

/** Options of {@link ServerApi.sendToUser}. */
export interface ApiSendOptions {
  /** The sender to stamp on the message; default: the API key's name. */
  sender?: string;
}

/** Options of {@link ServerApi.subscribe}. */
export interface ApiSubscribeOptions {
  /** Whether the user's connections get `MemberJoined` / `MemberLeft` pushes for the room. */
  presenceEvents?: boolean;
}

/**
 * The server answered a {@link ServerApi} request with an HTTP error and an
 * `Error` body. A {@link ServerError}, so `code`, `codeName`, `temporary` and
 * `retryAfterMs` read as for WebSocket commands; `status` is the HTTP status.
 */
export class ServerApiError extends ServerError {
  /** The HTTP status, e.g. 401. */
  readonly status: number;

  constructor(status: number, code: ErrorCode, message: string, temporary: boolean, retryAfterMs = 0) {
    super(code, message, temporary, retryAfterMs);
    this.name = "ServerApiError";
    this.status = status;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const PROTOBUF = "application/x-protobuf";
const JSON_TYPE = "application/json";

type Method = "GET" | "POST" | "PUT" | "DELETE";

/** A request: method, path below `/api/v1`, optional query, optional body. */
interface Call<Req extends DescMessage, Rep extends DescMessage> {
  /** Names the call in errors, e.g. "publish". */
  name: string;
  method: Method;
  path: string;
  query?: Record<string, string | undefined>;
  body?: { schema: Req; message: MessageShape<Req> };
  reply: Rep;
}

/**
 * A client of Switchboard's HTTP server API (`/api/v1`), for backends:
 * publish to rooms, read history and presence, message and notify users,
 * subscribe users' connections to rooms and disconnect them.
 *
 * ```ts
 * const api = new ServerApi({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.SWITCHBOARD_API_KEY });
 * const ack = await api.publish("lobby", "deploy finished", { sender: "ci" });
 * ```
 *
 * Every method resolves with the generated reply message. A failure rejects
 * with a {@link ServerApiError} (the server's `Error`), a
 * {@link ConnectionError} (the request did not reach the server or the
 * response was cut; temporary) or a {@link TimeoutError} (no complete
 * response within `timeoutMs`; temporary). In neither of the last two cases
 * is it known whether the request took effect, nor after a
 * `ERROR_CODE_OUTCOME_UNKNOWN` (HTTP 504: the broker did not confirm the
 * command in time): retry a publish with the same `idempotencyKey`. After
 * `ERROR_CODE_UNAVAILABLE` (HTTP 503) the request had no effect.
 */
export class ServerApi {
  private readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly encoding: ServerApiEncoding;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;
  private readonly codec: PayloadCodec;

  constructor(options: ServerApiOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    // Checked at run time too, for callers without type checking.
    const encoding: string = options.encoding ?? "protobuf";
    if (encoding !== "protobuf" && encoding !== "json") {
      throw new TypeError(`switchboard: unknown encoding "${encoding}"; use "protobuf" or "json"`);
    }
    this.encoding = encoding;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (options.fetch) {
      this.fetchFn = options.fetch;
    } else {
      const global = (globalThis as { fetch?: typeof fetch }).fetch;
      if (!global) {
        throw new Error("switchboard: no fetch implementation found; pass options.fetch");
      }
      // Called unbound, the browser's fetch throws "Illegal invocation".
      this.fetchFn = global.bind(globalThis);
    }
    const types = options.types;
    this.codec = new PayloadCodec(
      types === undefined ? undefined : "kind" in types ? types : createRegistry(...types),
    );
  }

  /** `POST /rooms/{room}/messages`: publishes to a room; its members get a `RoomMessage` push. */
  publish(room: string, payload: Content, options: ApiPublishOptions = {}): Promise<PublishReply> {
    return this.call({
      name: "publish",
      method: "POST",
      path: `/rooms/${seg(room)}/messages`,
      body: {
        schema: ApiPublishRequestSchema,
        message: create(ApiPublishRequestSchema, {
          payload: this.codec.encode(payload),
          sender: options.sender ?? "",
          idempotencyKey: options.idempotencyKey ?? "",
        }),
      },
      reply: PublishReplySchema,
    });
  }

  /** `GET /rooms/{room}/messages`: a page of the room's history. */
  history(room: string, options: ApiHistoryOptions = {}): Promise<HistoryReply> {
    return this.call({
      name: "history",
      method: "GET",
      path: `/rooms/${seg(room)}/messages`,
      query: {
        limit: num(options.limit),
        before: num(options.before),
        after: num(options.after),
      },
      reply: HistoryReplySchema,
    });
  }

  /** `POST /rooms/{room}/notifications`: a `Notification` push (with `room` set) to every member. Not stored. */
  notifyRoom(room: string, payload: Content): Promise<ApiNotifyReply> {
    return this.call({
      name: "notifyRoom",
      method: "POST",
      path: `/rooms/${seg(room)}/notifications`,
      body: {
        schema: ApiNotifyRequestSchema,
        message: create(ApiNotifyRequestSchema, { payload: this.codec.encode(payload) }),
      },
      reply: ApiNotifyReplySchema,
    });
  }

  /** `GET /rooms/{room}/presence`: the connections present in the room, on every node. */
  presence(room: string): Promise<PresenceReply> {
    return this.call({
      name: "presence",
      method: "GET",
      path: `/rooms/${seg(room)}/presence`,
      reply: PresenceReplySchema,
    });
  }

  /** `GET /rooms/{room}`: the room's position and member count. */
  room(room: string): Promise<RoomInfo> {
    return this.call({ name: "room", method: "GET", path: `/rooms/${seg(room)}`, reply: RoomInfoSchema });
  }

  /** `GET /rooms`: rooms that have history or members (`limit`: server default 100, at most 1000). */
  rooms(options: { limit?: number } = {}): Promise<ApiRoomList> {
    return this.call({
      name: "rooms",
      method: "GET",
      path: "/rooms",
      query: { limit: num(options.limit) },
      reply: ApiRoomListSchema,
    });
  }

  /** `POST /users/{user}/messages`: a `DirectMessage` push to every connection of the user. */
  sendToUser(user: string, payload: Content, options: ApiSendOptions = {}): Promise<ApiSendReply> {
    return this.call({
      name: "sendToUser",
      method: "POST",
      path: `/users/${seg(user)}/messages`,
      body: {
        schema: ApiSendRequestSchema,
        message: create(ApiSendRequestSchema, {
          payload: this.codec.encode(payload),
          sender: options.sender ?? "",
        }),
      },
      reply: ApiSendReplySchema,
    });
  }

  /** `POST /users/{user}/notifications`: a `Notification` push (`room` empty) to every connection of the user. */
  notifyUser(user: string, payload: Content): Promise<ApiNotifyReply> {
    return this.call({
      name: "notifyUser",
      method: "POST",
      path: `/users/${seg(user)}/notifications`,
      body: {
        schema: ApiNotifyRequestSchema,
        message: create(ApiNotifyRequestSchema, { payload: this.codec.encode(payload) }),
      },
      reply: ApiNotifyReplySchema,
    });
  }

  /**
   * `PUT /users/{user}/rooms/{room}`: makes every live connection of the user
   * a member of the room; each gets a `Subscribed` push, then the room's
   * messages. Resolves once the request was handed to every node.
   */
  subscribe(user: string, room: string, options: ApiSubscribeOptions = {}): Promise<ApiAccepted> {
    return this.call({
      name: "subscribe",
      method: "PUT",
      path: `/users/${seg(user)}/rooms/${seg(room)}`,
      body: {
        schema: ApiSubscribeRequestSchema,
        message: create(ApiSubscribeRequestSchema, { presenceEvents: options.presenceEvents ?? false }),
      },
      reply: ApiAcceptedSchema,
    });
  }

  /** `DELETE /users/{user}/rooms/{room}`: the user's connections leave the room (`Unsubscribed` push). */
  unsubscribe(user: string, room: string): Promise<ApiAccepted> {
    return this.call({
      name: "unsubscribe",
      method: "DELETE",
      path: `/users/${seg(user)}/rooms/${seg(room)}`,
      reply: ApiAcceptedSchema,
    });
  }

  /** `POST /users/{user}/disconnect`: closes every connection of the user with 4500 (kicked, no reconnect). */
  disconnect(user: string): Promise<ApiAccepted> {
    return this.call({
      name: "disconnect",
      method: "POST",
      path: `/users/${seg(user)}/disconnect`,
      reply: ApiAcceptedSchema,
    });
  }

  private async call<Req extends DescMessage, Rep extends DescMessage>(
    call: Call<Req, Rep>,
  ): Promise<MessageShape<Rep>> {
    const json = this.encoding === "json";
    let url = `${this.baseUrl}/api/v1${call.path}`;
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(call.query ?? {})) {
      if (v !== undefined) {
        query.set(k, v);
      }
    }
    const qs = query.toString();
    if (qs !== "") {
      url += `?${qs}`;
    }
    const headers: Record<string, string> = { Accept: json ? JSON_TYPE : PROTOBUF };
    if (this.apiKey !== undefined) {
      headers["Authorization"] = `Bearer ${this.apiKey}`;
    }
    let body: BodyInit | undefined;
    if (call.body) {
      headers["Content-Type"] = json ? JSON_TYPE : PROTOBUF;
      body = json
        ? JSON.stringify(toJson(call.body.schema, call.body.message))
        : toBinary(call.body.schema, call.body.message);
    }

    const what = `${call.method} ${url}`;
    const signal = AbortSignal.timeout(this.timeoutMs);
    let response: Response;
    let bytes: Uint8Array;
    try {
      response = await this.fetchFn(url, { method: call.method, headers, body, signal });
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch (err) {
      if (signal.aborted) {
        throw new TimeoutError(call.name, this.timeoutMs);
      }
      throw new ConnectionError(`switchboard: ${what} failed: ${describe(err)}`, true, undefined, "", {
        cause: err,
      });
    }

    const type = mediaType(response.headers.get("Content-Type"));
    if (!response.ok) {
      throw apiError(response, type, bytes, what);
    }
    try {
      return decode(call.reply, type, bytes);
    } catch (err) {
      throw new SwitchboardError(
        `switchboard: ${what}: cannot decode the ${response.status} response (${type || "no Content-Type"}): ${describe(err)}`,
        false,
        { cause: err },
      );
    }
  }
}

/** A path segment, percent-encoded. */
function seg(s: string): string {
  return encodeURIComponent(s);
}

function num(v: bigint | number | undefined): string | undefined {
  return v === undefined ? undefined : v.toString();
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
function mediaType(header: string | null): string {
  return (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

function decode<T extends DescMessage>(schema: T, type: string, bytes: Uint8Array): MessageShape<T> {
  if (type === PROTOBUF) {
    return fromBinary(schema, bytes);
  }
  if (type === JSON_TYPE) {
    const json = JSON.parse(new TextDecoder().decode(bytes)) as JsonValue;
    return fromJson(schema, json, { ignoreUnknownFields: true });
  }
  throw new Error(`unexpected Content-Type "${type}"`);
}

/** The error for a non-2xx response: its `Error` body, or one derived from the status. */
function apiError(response: Response, type: string, bytes: Uint8Array, what: string): ServerApiError {
  const status = response.status;
  let retryAfterMs = 0;
  const header = response.headers.get("Retry-After");
  if (header !== null && /^\d+$/.test(header.trim())) {
    retryAfterMs = Number(header.trim()) * 1000;
  }
  try {
    const e = decode(ErrorSchema, type, bytes);
    return new ServerApiError(status, e.code, e.message, e.temporary, e.retryAfterMs || retryAfterMs);
  } catch {
    // Not an `Error` body (e.g. a proxy's error page): derive what we can.
    const text = new TextDecoder().decode(bytes.subarray(0, 200)).trim();
    const temporary = status === 429 || status === 502 || status === 503 || status === 504;
    return new ServerApiError(
      status,
      codeForStatus(status),
      `${what}: HTTP ${status}${text ? `: ${text}` : ""}`,
      temporary,
      retryAfterMs,
    );
  }
}

/**
 * The code of an error response without an `Error` body (e.g. a proxy's page).
 * A gateway's 502 or 504 may come after the request was forwarded, so its
 * outcome is unknown; a 503 means nothing was carried out.
 */
function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return ErrorCode.UNAUTHORIZED;
    case 403:
      return ErrorCode.PERMISSION_DENIED;
    case 413:
      return ErrorCode.LIMIT_EXCEEDED;
    case 429:
      return ErrorCode.RATE_LIMITED;
    case 503:
      return ErrorCode.UNAVAILABLE;
    case 502:
    case 504:
      return ErrorCode.OUTCOME_UNKNOWN;
    default:
      return status >= 400 && status < 500 ? ErrorCode.BAD_REQUEST : ErrorCode.INTERNAL;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}
