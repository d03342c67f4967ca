import { create, createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, Registry } from "@bufbuild/protobuf";
import type { BackoffOptions } from "./backoff.js";
import { backoffDelay } from "./backoff.js";
import { CLOSE_ABNORMAL, shouldReconnect } from "./close_codes.js";
import { Emitter } from "./emitter.js";
import { ConnectionError, ServerError, SwitchboardError, TimeoutError, withIdempotencyKey } from "./errors.js";
import type {
  ConnectReply,
  ConnectRequest,
  DirectReply,
  HistoryReply,
  JoinReply,
  LeaveReply,
  PingReply,
  PresenceReply,
  PublishReply,
  RefreshReply,
} from "./gen/switchboard/v1/commands_pb.js";
import {
  ConnectRequestSchema,
  DirectRequestSchema,
  HistoryRequestSchema,
  JoinRequestSchema,
  LeaveRequestSchema,
  PingRequestSchema,
  PresenceRequestSchema,
  PublishRequestSchema,
  RefreshRequestSchema,
} from "./gen/switchboard/v1/commands_pb.js";
import type { ClientFrame, ServerFrame } from "./gen/switchboard/v1/envelope_pb.js";
import { ClientFrameSchema, ServerFrameSchema } from "./gen/switchboard/v1/envelope_pb.js";
import { ErrorCode } from "./gen/switchboard/v1/errors_pb.js";
import type { Disconnect, Subscribed } from "./gen/switchboard/v1/pushes_pb.js";
import type { Member, StreamPosition } from "./gen/switchboard/v1/types_pb.js";
import { StreamPositionSchema } from "./gen/switchboard/v1/types_pb.js";
import { testHooks } from "./internal.js";
import type { Content, ReceivedDirectMessage, ReceivedMessage, ReceivedNotification } from "./payload.js";
import { PayloadCodec } from "./payload.js";
import { DEFAULT_PUBLISH_RETRIES, isRetriedPublishError, newIdempotencyKey, publishRetryDelay } from "./publish.js";
import type { JoinOptions, SubscriptionOwner } from "./subscription.js";
import { Subscription } from "./subscription.js";
import type { WebSocketConstructor, WebSocketLike } from "./websocket.js";
import { SUBPROTOCOL, WS_OPEN, frameBytes, resolveWebSocket } from "./websocket.js";

/**
 * How to authenticate: a JWT (or a function returning one, called for every
 * connection attempt so a fresh token can be fetched), or, against a server
 * in development mode, an anonymous user name. A token passed to
 * {@link Client.refresh} replaces a fixed token or a name for later
 * reconnects; a token function keeps being called.
 */
export type Auth = { token: string | (() => string | Promise<string>) } | { name: string };

/** Options of {@link Client.connect}. */
export interface ClientOptions {
  /**
   * Application message types carried in payloads (e.g.
   * `[ChatMessageSchema, TypingEventSchema]`), or a registry of them.
   * Received payloads of these types are decoded into `value`.
   */
  types?: readonly DescMessage[] | Registry;
  /** Time allowed for each command, including waiting for a reconnect. Default 10000 ms. */
  commandTimeoutMs?: number;
  /** Reconnect automatically after a connection loss. Default true. */
  reconnect?: boolean;
  /** Reconnect backoff (full jitter, 0.5 s doubling up to 20 s by default). */
  backoff?: BackoffOptions;
  /** Messages each subscription buffers for its iterator. Default 1024. */
  bufferSize?: number;
  /** Commands that may wait for a connection at once. Default 1000. */
  maxQueuedCommands?: number;
  /**
   * How many times `publish` sends a publish again, with the same
   * idempotency key, after the server answered `ERROR_CODE_UNAVAILABLE` or
   * `ERROR_CODE_OUTCOME_UNKNOWN`; 0 turns retries off. The waits are full
   * jitter, 100 ms doubling up to 2 s. Default 3.
   */
  publishRetries?: number;
  /**
   * WebSocket implementation. Default: the `ws` package under Node (through
   * the package's "node" export), else `globalThis.WebSocket`.
   */
  WebSocket?: WebSocketConstructor;
}

/** Connection states. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** A `state` event. */
export interface StateChange {
  /** The new state. */
  readonly state: ConnectionState;
  /**
   * For "reconnecting" and "closed": the close code of the connection that
   * ended (1006 when it dropped without a close handshake).
   */
  readonly code?: number;
  /** The close reason, when there is one. */
  readonly reason?: string;
  /** For "reconnecting": the retry number since the last connection (0 first). */
  readonly attempt?: number;
  /** For "reconnecting": how long before the next attempt. */
  readonly delayMs?: number;
  /** For "closed" without `close()`: why the client gave up. */
  readonly error?: Error;
}

/** Events of a {@link Client}. */
export interface ClientEvents {
  /** The connection state changed. */
  state: StateChange;
  /** A direct message to this user arrived. */
  directMessage: ReceivedDirectMessage;
  /** A notification arrived (to the user, or to a joined room). */
  notification: ReceivedNotification;
  /** The server reported an error not tied to a command (request id 0). */
  error: SwitchboardError;
  /**
   * A backend subscribed this connection to a room through the HTTP API
   * (`PUT /api/v1/users/{user}/rooms/{room}`, a `Subscribed` push): the
   * subscription, like one {@link Client.join} returns, yields the room's
   * messages published after the pushed position, is rejoined after
   * reconnects, and ends when a backend unsubscribes the connection (an
   * `Unsubscribed` push) or the app calls `leave()`. Not emitted for a room
   * the client has already joined (its subscription continues).
   */
  subscribed: Subscription;
}

/** Bounds of a history page (see `HistoryRequest`). */
export interface HistoryOptions {
  /** Page size; 0 or absent: the server's default. */
  limit?: number;
  /** Only messages with a smaller offset (exclusive). */
  before?: bigint | number;
  /** Only messages with a larger offset (exclusive); pages forward. */
  after?: bigint | number;
}

/** A page of history. */
export interface HistoryPage {
  /** The messages, in offset order. */
  readonly messages: ReceivedMessage[];
  /** The room's current position. */
  readonly position: StreamPosition;
  /** Whether more messages exist beyond the page in the paging direction. */
  readonly hasMore: boolean;
}

type Command = Exclude<ClientFrame["command"], { case: undefined }>;
type CommandCase = Command["case"];
type Reply = Exclude<ServerFrame["kind"], { case: undefined }>;
/** The reply of each command. */
interface ReplyMap {
  connect: ConnectReply;
  join: JoinReply;
  leave: LeaveReply;
  publish: PublishReply;
  direct: DirectReply;
  history: HistoryReply;
  presence: PresenceReply;
  ping: PingReply;
  refresh: RefreshReply;
}
type ReplyOf<C extends CommandCase> = ReplyMap[C];
type Timer = ReturnType<typeof setTimeout>;

/** A command waiting to be sent, or sent and waiting for its reply. */
interface Pending {
  command: Command;
  /** Request id once sent; 0 while queued. */
  id: number;
  timer: Timer | undefined;
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
}

/** One WebSocket connection attempt and its session. */
interface Connection {
  ws: WebSocketLike;
  /** Commands sent on this connection, by request id. */
  inflight: Map<number, Pending>;
  /** True once `connect` and every rejoin are done: user commands flow. */
  ready: boolean;
  closed: boolean;
  /** The `Disconnect` push that announced the close, if any. */
  disconnect?: Disconnect;
  /**
   * The error that refused `connect` or `refresh`, if any. A terminal one
   * means the server closes the connection (1008) and no reconnect follows.
   */
  connectError?: ServerError;
  maxMessageSize: number;
  lastFrameAt: number;
  pinging: boolean;
  openTimer?: Timer;
  heartbeat?: ReturnType<typeof setInterval>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_BUFFER = 1024;
const DEFAULT_MAX_QUEUED = 1000;
const CLOSE_WAIT_MS = 1000;

/**
 * A Switchboard client: one WebSocket that reconnects on its own.
 *
 * ```ts
 * const client = await Client.connect("ws://127.0.0.1:8080/ws", { name: "alice" });
 * const sub = await client.join("lobby");
 * await client.publish("lobby", "hello");
 * for await (const msg of sub) console.log(msg.sender, msg.text);
 * ```
 *
 * After a connection loss that is not terminal (see `shouldReconnect`), it
 * waits a full-jitter backoff, reconnects, sends `connect` again and rejoins
 * every room with `since` = the last delivered position, so each
 * subscription continues with no gap and no duplicate (or reports
 * `recoveryFailed`). Commands issued meanwhile wait for the connection,
 * within their timeout; commands that were in flight when it dropped fail
 * with a temporary {@link ConnectionError}.
 */
export class Client extends Emitter<ClientEvents> {
  private readonly url: string;
  private readonly auth: Auth;
  private readonly WS: WebSocketConstructor;
  private readonly timeoutMs: number;
  private readonly reconnectEnabled: boolean;
  private readonly backoff: BackoffOptions;
  private readonly bufferSize: number;
  private readonly maxQueued: number;
  private readonly publishRetries: number;
  private readonly codec: PayloadCodec;
  private random: () => number = Math.random;

  /** The token of the latest successful `refresh`, used for later reconnects. */
  private refreshedToken: string | undefined;
  private currentState: ConnectionState = "connecting";
  private conn: Connection | undefined;
  private session: ConnectReply | undefined;
  /** User commands waiting for a ready connection, in order. */
  private queue: Pending[] = [];
  private nextId = 1;
  /** Failed attempts since the last successful connection. */
  private attempt = 0;
  private reconnectTimer: Timer | undefined;
  /** Joined rooms (the app's and the server-side ones), rejoined after every reconnect. */
  private readonly subs = new Map<string, Subscription>();
  /** Rooms whose first join is in flight. */
  private readonly joining = new Map<string, Subscription>();
  /** Settles `Client.connect`; undefined once the first connection is ready. */
  private initial: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private closing = false;
  private closeDone: Promise<void> | undefined;
  private closeResolve: (() => void) | undefined;
  /** Ends each publish retry wait early (the client closed); see `retryPause`. */
  private readonly retryWaits = new Set<() => void>();
  private readonly owner: SubscriptionOwner;

  private constructor(url: string, auth: Auth, options: ClientOptions) {
    super();
    this.url = url.replace(/^http(s?):/i, "ws$1:");
    this.auth = auth;
    this.WS = resolveWebSocket(options.WebSocket);
    this.timeoutMs = options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.reconnectEnabled = options.reconnect ?? true;
    this.backoff = options.backoff ?? {};
    this.bufferSize = options.bufferSize ?? DEFAULT_BUFFER;
    this.maxQueued = options.maxQueuedCommands ?? DEFAULT_MAX_QUEUED;
    this.publishRetries = options.publishRetries ?? DEFAULT_PUBLISH_RETRIES;
    const types = options.types;
    const registry =
      types === undefined ? undefined : "kind" in types ? types : createRegistry(...types);
    this.codec = new PayloadCodec(registry);
    this.owner = {
      codec: this.codec,
      leaveRoom: (sub, ignoreNotJoined) => this.leaveRoom(sub.room, sub, ignoreNotJoined),
      publishTo: (room, content, key) => this.publish(room, content, { idempotencyKey: key }),
    };
    testHooks.set(this, {
      dropConnection: () => {
        const conn = this.conn;
        if (!conn) {
          return false;
        }
        this.abort(conn, "connection dropped (test hook)");
        return true;
      },
      setRandom: (random) => {
        this.random = random;
      },
    });
  }

  /**
   * Opens a connection and authenticates. Resolves once connected; rejects
   * when the first attempt fails (a {@link ServerError} such as
   * `ERROR_CODE_UNAUTHORIZED`, a {@link ConnectionError}, or a
   * {@link TimeoutError}); the first attempt is not retried.
   */
  static async connect(url: string, auth: Auth, options: ClientOptions = {}): Promise<Client> {
    const client = new Client(url, auth, options);
    await new Promise<void>((resolve, reject) => {
      client.initial = { resolve, reject };
      void client.open();
    });
    return client;
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.currentState;
  }

  /** The authenticated user id. */
  get user(): string {
    return this.session?.user ?? "";
  }

  /**
   * The reply to the latest `connect` (connection id, limits, token expiry).
   * Its `expiresAtMs` is the expiry of the token used to connect; after a
   * {@link refresh}, the one it resolved with applies.
   */
  get connectReply(): ConnectReply | undefined {
    return this.session;
  }

  /**
   * Joins a room. The subscription yields its messages (first those
   * recovered after `since`, if given) and is rejoined after reconnects.
   */
  async join(room: string, options: JoinOptions = {}): Promise<Subscription> {
    const since =
      options.since === undefined
        ? undefined
        : create(StreamPositionSchema, {
            offset: BigInt(options.since.offset),
            epoch: options.since.epoch,
          });
    const presenceEvents = options.presenceEvents ?? false;
    const command = {
      case: "join" as const,
      value: create(JoinRequestSchema, { room, since, presenceEvents }),
    };
    const existing = this.subs.get(room) ?? this.joining.get(room);
    if (existing) {
      // Already joined: the server answers ERROR_CODE_ALREADY_JOINED.
      await this.request(command);
      return existing;
    }
    this.ensureOpen();
    const sub = new Subscription(this.owner, room, presenceEvents, this.bufferSize);
    sub.beginJoin(since);
    this.joining.set(room, sub);
    try {
      // Applied synchronously with the reply so that no push of the room can
      // slip between the reply and the subscription becoming live.
      await this.request(command, (reply) => {
        this.joining.delete(room);
        if (!this.closing && this.currentState !== "closed") {
          this.subs.set(room, sub);
          sub.applyJoin(reply, since, false);
        }
      });
    } catch (err) {
      if (this.joining.get(room) === sub) {
        this.joining.delete(room);
      }
      if (this.subs.get(room) === sub && sub.active) {
        // A backend subscribed the connection to the room before the server
        // got this join (which it refused with ALREADY_JOINED): the
        // `Subscribed` push made the subscription live.
        return sub;
      }
      sub.end();
      throw err;
    }
    return sub;
  }

  /**
   * Leaves a room (ending its subscription, if any). Rejects with the
   * server's error, e.g. `ERROR_CODE_NOT_JOINED`.
   */
  leave(room: string): Promise<void> {
    return this.leaveRoom(room, this.subs.get(room), false);
  }

  /**
   * Publishes to a joined room: text, a typed message of a registered type,
   * or a payload. Resolves with the acknowledgement (offset, epoch, id,
   * time, `duplicate`) once the message is in the room's history; the
   * publisher's own subscription receives it too.
   *
   * Every publish carries an idempotency key: the app's `idempotencyKey`,
   * or else a fresh random one ({@link newIdempotencyKey}). When the server
   * answers `ERROR_CODE_UNAVAILABLE` or `ERROR_CODE_OUTCOME_UNKNOWN`, the
   * same publish (same key) is sent again, up to `publishRetries` times (a
   * new command each time, with its own timeout); if an earlier attempt was
   * applied after all, the acknowledgement is that attempt's, with
   * `duplicate` = true, and the message is delivered once. Other errors,
   * timeouts and connection losses are not retried, and `close()` ends a
   * retry wait, rejecting with the last error.
   *
   * Every {@link SwitchboardError} it rejects with carries the key in
   * `idempotencyKey`: publish again with it to retry safely. Content that
   * cannot be encoded (a typed message of an unregistered type) throws a
   * `TypeError` before anything is sent.
   */
  async publish(
    room: string,
    content: Content,
    options: { idempotencyKey?: string } = {},
  ): Promise<PublishReply> {
    const payload = this.codec.encode(content);
    const idempotencyKey = options.idempotencyKey || newIdempotencyKey();
    const command = {
      case: "publish" as const,
      value: create(PublishRequestSchema, { room, payload, idempotencyKey }),
    };
    for (let retry = 0; ; retry++) {
      try {
        return await this.request(command);
      } catch (err) {
        if (!(err instanceof SwitchboardError)) {
          throw err;
        }
        const again =
          retry < this.publishRetries &&
          isRetriedPublishError(err) &&
          (await this.retryPause(publishRetryDelay(retry, this.random)));
        if (!again) {
          throw withIdempotencyKey(err, idempotencyKey);
        }
      }
    }
  }

  /** Sends a direct message to every connection of `user`. */
  async direct(user: string, content: Content): Promise<DirectReply> {
    const payload = this.codec.encode(content);
    return this.request({ case: "direct", value: create(DirectRequestSchema, { user, payload }) });
  }

  /** Reads a page of a room's history (joining is not required). */
  async history(room: string, options: HistoryOptions = {}): Promise<HistoryPage> {
    const reply = await this.request({
      case: "history",
      value: create(HistoryRequestSchema, {
        room,
        limit: options.limit ?? 0,
        before: BigInt(options.before ?? 0),
        after: BigInt(options.after ?? 0),
      }),
    });
    return {
      messages: reply.messages.map((m) => this.codec.roomMessage(m)),
      position: reply.position ?? create(StreamPositionSchema),
      hasMore: reply.hasMore,
    };
  }

  /** Lists the connections present in a room (joining is not required). */
  async presence(room: string): Promise<Member[]> {
    const reply = await this.request({
      case: "presence",
      value: create(PresenceRequestSchema, { room }),
    });
    return reply.members;
  }

  /** Application-level ping; resolves with the server's reply (server time). */
  ping(): Promise<PingReply> {
    return this.request({ case: "ping", value: create(PingRequestSchema) });
  }

  /**
   * Replaces the connection's token (a JWT naming the same user), e.g.
   * shortly before the current one expires (`connectReply.expiresAtMs`).
   * Resolves with the new expiry (`expiresAtMs`, milliseconds since the
   * Unix epoch; 0 if never). From then on every reconnect authenticates with
   * this token (unless `connect` was given a token function, which keeps
   * being called).
   *
   * A token the server refuses (`ERROR_CODE_UNAUTHORIZED`, e.g. another
   * user's or a bad signature; `ERROR_CODE_TOKEN_EXPIRED`) rejects with that
   * {@link ServerError}, and the server then closes the connection with 1008:
   * the client ends ("closed", no reconnect). A connection whose token
   * expires without a refresh is closed with 1008 as well.
   */
  refresh(token: string): Promise<RefreshReply> {
    return this.request({ case: "refresh", value: create(RefreshRequestSchema, { token }) }, () => {
      this.refreshedToken = token;
    });
  }

  /**
   * Closes the connection (WebSocket close 1000) for good: no reconnect.
   * Waiting commands fail with a {@link ConnectionError}; subscriptions end
   * after their buffered messages. Resolves when the socket is closed.
   */
  close(): Promise<void> {
    if (this.closeDone) {
      return this.closeDone;
    }
    if (this.currentState === "closed") {
      this.closeDone = Promise.resolve();
      return this.closeDone;
    }
    this.closeDone = new Promise<void>((resolve) => {
      this.closeResolve = resolve;
    });
    this.closing = true;
    this.cancelRetryPauses();
    if (this.reconnectTimer !== undefined) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
    }
    const closedError = new ConnectionError("switchboard: the client was closed", false, 1000);
    this.rejectQueue(closedError);
    for (const sub of [...this.subs.values(), ...this.joining.values()]) {
      sub.end();
    }
    this.subs.clear();
    this.joining.clear();
    const conn = this.conn;
    if (conn && !conn.closed) {
      try {
        conn.ws.close(1000, "client closed");
      } catch {
        // Already closing.
      }
      const timer = setTimeout(() => this.abort(conn, "close handshake timed out"), CLOSE_WAIT_MS);
      const finish = conn.ws.onclose;
      conn.ws.onclose = (ev) => {
        clearTimeout(timer);
        finish?.(ev);
      };
    } else {
      this.finish(1000, "client closed", undefined);
    }
    return this.closeDone;
  }

  // ---------------------------------------------------------------------
  // Connection lifecycle

  private async open(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this.closing || this.currentState === "closed") {
      return;
    }
    this.setState({ state: "connecting" });
    let request: ConnectRequest;
    try {
      // A refreshed token replaces the token (or the name) given to
      // `connect`; a token function is asked for a fresh one every time.
      const auth = this.auth;
      if ("token" in auth) {
        const token = typeof auth.token === "function" ? await auth.token() : (this.refreshedToken ?? auth.token);
        request = create(ConnectRequestSchema, { token });
      } else if (this.refreshedToken !== undefined) {
        request = create(ConnectRequestSchema, { token: this.refreshedToken });
      } else {
        request = create(ConnectRequestSchema, { name: auth.name });
      }
    } catch (err) {
      this.connectFailed(new ConnectionError("switchboard: getting a token failed", true, undefined, "", { cause: err }));
      return;
    }
    if (this.isShutDown()) {
      this.finish(1000, "client closed", undefined);
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.url, [SUBPROTOCOL]);
      ws.binaryType = "arraybuffer";
    } catch (err) {
      this.connectFailed(new ConnectionError(`switchboard: cannot open ${this.url}`, false, undefined, "", { cause: err }));
      return;
    }
    const conn: Connection = {
      ws,
      inflight: new Map(),
      ready: false,
      closed: false,
      maxMessageSize: 0,
      lastFrameAt: Date.now(),
      pinging: false,
    };
    this.conn = conn;
    ws.onopen = () => {
      clearTimeout(conn.openTimer);
      void this.handshake(conn, request);
    };
    ws.onmessage = (ev) => this.onFrame(conn, ev.data);
    ws.onclose = (ev) => this.onClose(conn, ev.code, ev.reason);
    ws.onerror = () => {
      // A close event always follows; it carries what matters.
    };
    conn.openTimer = setTimeout(() => this.abort(conn, "opening the WebSocket timed out"), this.timeoutMs);
  }

  /** A connection attempt failed before a socket existed. */
  private connectFailed(error: ConnectionError): void {
    if (this.initial || !error.temporary || !this.reconnectEnabled) {
      this.finish(undefined, "", error);
    } else {
      this.scheduleReconnect(undefined, error.message);
    }
  }

  private async handshake(conn: Connection, request: ConnectRequest): Promise<void> {
    let reply: ConnectReply;
    try {
      reply = await this.send(conn, { case: "connect", value: request });
    } catch (err) {
      if (conn !== this.conn || conn.closed) {
        return;
      }
      if (err instanceof ServerError) {
        if (err.temporary && !this.initial && this.reconnectEnabled) {
          conn.connectError = err;
          this.abort(conn, `connect failed: ${err.message}`);
        } else {
          // Terminal (e.g. a bad or expired token).
          this.refused(conn, err, "connect");
        }
      } else {
        this.abort(conn, "connect failed");
      }
      return;
    }
    this.session = reply;
    conn.maxMessageSize = reply.maxMessageSize;
    // Rejoin every room, recovering from the last delivered position.
    await Promise.all([...this.subs.values()].map((sub) => this.rejoin(conn, sub)));
    if (conn !== this.conn || conn.closed || this.closing) {
      return;
    }
    conn.ready = true;
    this.attempt = 0;
    this.startHeartbeat(conn, reply.pingIntervalMs);
    this.setState({ state: "connected" });
    const initial = this.initial;
    this.initial = undefined;
    initial?.resolve();
    this.flushQueue(conn);
  }

  /**
   * The server refused `connect` or `refresh` for good: it closes the
   * connection itself (1008); give it a moment to, so the close code is
   * reported, then drop it. No reconnect follows either way.
   */
  private refused(conn: Connection, error: ServerError, command: string): void {
    conn.connectError = error;
    clearTimeout(conn.openTimer);
    conn.openTimer = setTimeout(() => this.abort(conn, `${command} failed: ${error.message}`, error), CLOSE_WAIT_MS);
  }

  private async rejoin(conn: Connection, sub: Subscription): Promise<void> {
    const since = sub.resumePosition();
    sub.beginJoin(since, true);
    try {
      await this.send(
        conn,
        {
          case: "join",
          value: create(JoinRequestSchema, { room: sub.room, since, presenceEvents: sub.presenceEvents }),
        },
        (reply) => {
          sub.applyJoin(reply, since, true);
        },
      );
    } catch (err) {
      if (conn !== this.conn || conn.closed || !sub.active) {
        return; // The connection went away: the next one rejoins.
      }
      if (!sub.joinPending) {
        // A `Subscribed` push for the room came first and stood for the
        // reply: the server refused this rejoin with ALREADY_JOINED.
        return;
      }
      if (err instanceof ServerError && !err.temporary) {
        // The room cannot be joined any more (e.g. permission revoked).
        if (this.subs.get(sub.room) === sub) {
          this.subs.delete(sub.room);
        }
        sub.end(err);
        return;
      }
      this.abort(conn, `rejoining ${sub.room} failed`);
    }
  }

  private startHeartbeat(conn: Connection, intervalMs: number): void {
    if (!(intervalMs > 0)) {
      return;
    }
    // The server's WebSocket pings are invisible to browser code, so a quiet
    // connection is probed with an application ping; no answer within the
    // command timeout means the server or the path to it is gone.
    conn.heartbeat = setInterval(() => {
      if (conn.closed || conn.pinging || Date.now() - conn.lastFrameAt < intervalMs) {
        return;
      }
      conn.pinging = true;
      this.send(conn, { case: "ping", value: create(PingRequestSchema) }).then(
        () => {
          conn.pinging = false;
        },
        (err: unknown) => {
          conn.pinging = false;
          if (err instanceof TimeoutError && conn === this.conn) {
            this.abort(conn, "the server did not answer a ping");
          }
        },
      );
    }, intervalMs);
  }

  private onFrame(conn: Connection, data: unknown): void {
    if (conn.closed) {
      return;
    }
    conn.lastFrameAt = Date.now();
    const bytes = frameBytes(data);
    if (!bytes) {
      return;
    }
    let frame: ServerFrame;
    try {
      frame = fromBinary(ServerFrameSchema, bytes);
    } catch {
      return; // Not a frame we can read; the protocol says ignore.
    }
    const kind = frame.kind;
    if (frame.id !== 0) {
      const pending = conn.inflight.get(frame.id);
      if (!pending) {
        return; // The command already timed out.
      }
      conn.inflight.delete(frame.id);
      clearTimeout(pending.timer);
      if (kind.case === "error") {
        const error = serverError(kind.value);
        if (pending.command.case === "refresh" && isAuthError(error)) {
          // The server closes the connection (1008) right after this error.
          this.refused(conn, error, "refresh");
        }
        pending.reject(error);
      } else if (kind.case === undefined) {
        pending.reject(new SwitchboardError("switchboard: the server sent a reply this client does not know", false));
      } else {
        pending.resolve(kind);
      }
      return;
    }
    switch (kind.case) {
      case "message": {
        const room = kind.value.room;
        (this.subs.get(room) ?? this.joining.get(room))?.push(kind.value);
        break;
      }
      case "directMessage":
        this.emit("directMessage", this.codec.directMessage(kind.value));
        break;
      case "notification": {
        const n = this.codec.notification(kind.value);
        if (n.room !== "") {
          this.subs.get(n.room)?.event("notification", n);
        }
        this.emit("notification", n);
        break;
      }
      case "memberJoined":
        this.subs.get(kind.value.room)?.event("memberJoined", kind.value);
        break;
      case "memberLeft":
        this.subs.get(kind.value.room)?.event("memberLeft", kind.value);
        break;
      case "subscribed":
        this.subscribed(kind.value);
        break;
      case "unsubscribed": {
        // Ended as by `leave()`; a later `join` of the room starts afresh.
        const sub = this.subs.get(kind.value.room);
        if (sub) {
          this.subs.delete(kind.value.room);
          sub.end();
        }
        break;
      }
      case "disconnect":
        conn.disconnect = kind.value;
        break;
      case "error":
        this.emit("error", serverError(kind.value));
        break;
      default:
        // Unknown push kinds are ignored (forward compatibility).
        break;
    }
  }

  /**
   * A backend made this connection a member of a room (HTTP API). The room's
   * messages after `position` follow, as after a join reply.
   */
  private subscribed(push: Subscribed): void {
    if (this.isShutDown()) {
      return;
    }
    const room = push.room;
    const existing = this.subs.get(room) ?? this.joining.get(room);
    if (existing) {
      // The server ignores a subscription for a room the connection is a
      // member of, so a live subscription stays as it is. But when the app's
      // join (or a rejoin) of the room is still waiting, the server took the
      // subscription first and will refuse that join with ALREADY_JOINED:
      // this push is its reply.
      if (existing.joinPending) {
        if (this.joining.get(room) === existing) {
          this.joining.delete(room);
          this.subs.set(room, existing);
        }
        existing.applySubscribed(push);
      }
      return;
    }
    const sub = new Subscription(this.owner, room, push.presenceEvents, this.bufferSize);
    this.subs.set(room, sub);
    sub.applySubscribed(push);
    this.emit("subscribed", sub);
  }

  /** Drops a connection at once, without a close handshake; handled like a close 1006. */
  private abort(conn: Connection, reason: string, error?: Error): void {
    if (conn.closed) {
      return;
    }
    const ws = conn.ws;
    // Keep no-op handlers: `ws` emits "error" when terminated while connecting.
    ws.onopen = () => undefined;
    ws.onmessage = () => undefined;
    ws.onclose = () => undefined;
    ws.onerror = () => undefined;
    try {
      if (ws.terminate) {
        ws.terminate();
      } else {
        ws.close();
      }
    } catch {
      // Already gone.
    }
    this.onClose(conn, CLOSE_ABNORMAL, reason, error);
  }

  private onClose(conn: Connection, code: number, reason: string, error?: Error): void {
    if (conn.closed) {
      return;
    }
    conn.closed = true;
    clearTimeout(conn.openTimer);
    if (conn.heartbeat !== undefined) {
      clearInterval(conn.heartbeat);
    }
    const inflight = [...conn.inflight.values()];
    conn.inflight.clear();
    const current = conn === this.conn;
    if (current) {
      this.conn = undefined;
    }
    const decided = conn.disconnect ? conn.disconnect.reconnect : shouldReconnect(code);
    const refused = conn.connectError !== undefined && !conn.connectError.temporary;
    const willReconnect =
      current &&
      !this.closing &&
      !this.initial &&
      this.reconnectEnabled &&
      decided &&
      !refused &&
      error === undefined;
    const lost = new ConnectionError(
      `switchboard: connection closed (${code}${reason ? `: ${reason}` : ""})`,
      willReconnect,
      code,
      reason,
    );
    for (const pending of inflight) {
      clearTimeout(pending.timer);
      pending.reject(lost);
    }
    if (!current) {
      return;
    }
    if (this.closing) {
      this.finish(1000, "client closed", undefined);
    } else if (willReconnect) {
      this.scheduleReconnect(code, reason);
    } else {
      const cause = error ?? conn.connectError;
      const detail = `${code}${reason ? `: ${reason}` : ""}`;
      this.finish(
        code,
        reason,
        cause ??
          new ConnectionError(
            this.initial
              ? `switchboard: could not connect to ${this.url} (${detail})`
              : `switchboard: connection closed (${detail}), not reconnecting`,
            false,
            code,
            reason,
          ),
      );
    }
  }

  private scheduleReconnect(code: number | undefined, reason: string): void {
    const attempt = this.attempt++;
    const delayMs = backoffDelay(attempt, this.backoff, this.random);
    this.setState({ state: "reconnecting", code, reason, attempt, delayMs });
    this.reconnectTimer = setTimeout(() => void this.open(), delayMs);
  }

  /** Enters the final "closed" state. */
  private finish(code: number | undefined, reason: string, error: Error | undefined): void {
    if (this.currentState === "closed") {
      this.closeResolve?.();
      return;
    }
    if (this.reconnectTimer !== undefined) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
    }
    this.cancelRetryPauses();
    const failure =
      error instanceof SwitchboardError
        ? error
        : new ConnectionError("switchboard: the client is closed", false, code, reason, { cause: error });
    this.rejectQueue(failure);
    for (const sub of [...this.subs.values(), ...this.joining.values()]) {
      sub.end(error);
    }
    this.subs.clear();
    this.joining.clear();
    this.setState({ state: "closed", code, reason, error });
    const initial = this.initial;
    this.initial = undefined;
    initial?.reject(failure);
    this.closeResolve?.();
  }

  private setState(change: StateChange): void {
    this.currentState = change.state;
    const clean: StateChange = Object.fromEntries(
      Object.entries(change).filter(([, v]) => v !== undefined),
    ) as unknown as StateChange;
    this.emit("state", clean);
  }

  // ---------------------------------------------------------------------
  // Commands

  /** Whether `close()` was called or the client gave up. */
  private isShutDown(): boolean {
    return this.closing || this.currentState === "closed";
  }

  /**
   * Waits `ms` before a publish retry. Resolves true when the wait is over,
   * false at once if the client is (or becomes) closed: no retry then.
   */
  private retryPause(ms: number): Promise<boolean> {
    if (this.isShutDown()) {
      return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      const end = (elapsed: boolean) => {
        clearTimeout(timer);
        this.retryWaits.delete(cancel);
        resolve(elapsed);
      };
      const cancel = () => end(false);
      const timer = setTimeout(() => end(true), ms);
      this.retryWaits.add(cancel);
    });
  }

  private cancelRetryPauses(): void {
    for (const cancel of [...this.retryWaits]) {
      cancel();
    }
  }

  private ensureOpen(): void {
    if (this.isShutDown()) {
      throw new ConnectionError("switchboard: the client is closed", false);
    }
  }

  /** Sends a user command once a connection is ready (queued until then). */
  private request<C extends CommandCase>(
    command: Extract<Command, { case: C }>,
    onReply?: (reply: ReplyOf<C>) => void,
  ): Promise<ReplyOf<C>> {
    if (this.closing || this.currentState === "closed") {
      return Promise.reject(new ConnectionError("switchboard: the client is closed", false));
    }
    const conn = this.conn;
    if (conn?.ready) {
      this.flushQueue(conn);
      return this.send(conn, command, onReply);
    }
    if (this.queue.length >= this.maxQueued) {
      return Promise.reject(
        new SwitchboardError(`switchboard: ${this.maxQueued} commands already wait for the connection`, true),
      );
    }
    return new Promise<ReplyOf<C>>((resolve, reject) => {
      const pending = this.pending(command, (value: ReplyOf<C>) => resolve(value), reject, onReply);
      this.queue.push(pending);
    });
  }

  /** Sends a command on `conn` now. */
  private send<C extends CommandCase>(
    conn: Connection,
    command: Extract<Command, { case: C }>,
    onReply?: (reply: ReplyOf<C>) => void,
  ): Promise<ReplyOf<C>> {
    return new Promise<ReplyOf<C>>((resolve, reject) => {
      this.transmit(conn, this.pending(command, (value: ReplyOf<C>) => resolve(value), reject, onReply));
    });
  }

  private pending<C extends CommandCase>(
    command: Extract<Command, { case: C }>,
    resolve: (value: ReplyOf<C>) => void,
    reject: (error: Error) => void,
    onReply?: (reply: ReplyOf<C>) => void,
  ): Pending {
    const pending: Pending = {
      command,
      id: 0,
      timer: undefined,
      resolve: (reply) => {
        if (reply.case !== command.case) {
          reject(new SwitchboardError(`switchboard: ${command.case} was answered with ${reply.case}`, false));
          return;
        }
        const value = reply.value as ReplyOf<C>;
        try {
          onReply?.(value);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        resolve(value);
      },
      reject,
    };
    pending.timer = setTimeout(() => {
      const index = this.queue.indexOf(pending);
      if (index >= 0) {
        this.queue.splice(index, 1);
      }
      if (pending.id !== 0) {
        this.conn?.inflight.delete(pending.id);
      }
      reject(new TimeoutError(command.case, this.timeoutMs));
    }, this.timeoutMs);
    return pending;
  }

  private transmit(conn: Connection, pending: Pending): void {
    const id = this.allocateId(conn);
    const bytes = toBinary(ClientFrameSchema, create(ClientFrameSchema, { id, command: pending.command }));
    if (conn.maxMessageSize > 0 && bytes.byteLength > conn.maxMessageSize) {
      clearTimeout(pending.timer);
      pending.reject(
        new SwitchboardError(
          `switchboard: the ${pending.command.case} frame has ${bytes.byteLength} bytes; the server accepts at most ${conn.maxMessageSize}`,
          false,
        ),
      );
      return;
    }
    pending.id = id;
    conn.inflight.set(id, pending);
    if (conn.closed || conn.ws.readyState !== WS_OPEN) {
      // Rejected by the close handler (or right here if it already ran).
      if (conn.closed) {
        conn.inflight.delete(id);
        clearTimeout(pending.timer);
        pending.reject(new ConnectionError("switchboard: the connection is closed", !this.closing, CLOSE_ABNORMAL));
      }
      return;
    }
    try {
      conn.ws.send(bytes);
    } catch {
      // The close event that follows rejects it.
    }
  }

  private allocateId(conn: Connection): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
      if (!conn.inflight.has(id)) {
        return id;
      }
    }
  }

  private flushQueue(conn: Connection): void {
    const queued = this.queue;
    this.queue = [];
    for (const pending of queued) {
      if (conn.closed) {
        this.queue.push(pending);
      } else {
        this.transmit(conn, pending);
      }
    }
  }

  private rejectQueue(error: Error): void {
    const queued = this.queue;
    this.queue = [];
    for (const pending of queued) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
  }

  private async leaveRoom(room: string, sub: Subscription | undefined, ignoreNotJoined: boolean): Promise<void> {
    const local = sub !== undefined && this.subs.get(room) === sub;
    if (local) {
      this.subs.delete(room);
    }
    sub?.end();
    if (ignoreNotJoined && (this.closing || this.currentState === "closed")) {
      return;
    }
    try {
      await this.request({ case: "leave", value: create(LeaveRequestSchema, { room }) });
    } catch (err) {
      // A subscription the server already forgot (after a reconnect) is left.
      const forgotten =
        (local || ignoreNotJoined) &&
        ((err instanceof ServerError && err.code === ErrorCode.NOT_JOINED) || err instanceof ConnectionError);
      if (!forgotten) {
        throw err;
      }
    }
  }
}

/** Errors after which the server closes the connection with 1008. */
function isAuthError(error: ServerError): boolean {
  return error.code === ErrorCode.UNAUTHORIZED || error.code === ErrorCode.TOKEN_EXPIRED;
}

function serverError(e: { code: ErrorCode; message: string; temporary: boolean; retryAfterMs: number }): ServerError {
  return new ServerError(e.code, e.message, e.temporary, e.retryAfterMs);
}
