import { create } from "@bufbuild/protobuf";
import type { JoinReply, PublishReply } from "./gen/switchboard/v1/commands_pb.js";
import { JoinReplySchema } from "./gen/switchboard/v1/commands_pb.js";
import type { MemberJoined, MemberLeft, RoomMessage, Subscribed } from "./gen/switchboard/v1/pushes_pb.js";
import type { StreamPosition } from "./gen/switchboard/v1/types_pb.js";
import { StreamPositionSchema } from "./gen/switchboard/v1/types_pb.js";
import { Emitter } from "./emitter.js";
import type { Content, PayloadCodec, ReceivedMessage, ReceivedNotification } from "./payload.js";
import { BoundedQueue } from "./queue.js";

/** Where the iterator's buffer dropped messages (see `overflow`). */
class OverflowMark {
  constructor(
    readonly lastOffset: bigint,
    readonly epoch: string,
  ) {}
}

/** Options of `Client.join`. */
export interface JoinOptions {
  /**
   * Recover from this position (the last message the app saw): the messages
   * after it are delivered first, or `sub.recovered` is false.
   */
  since?: { offset: bigint | number; epoch: string };
  /** Also receive `memberJoined` / `memberLeft` events. */
  presenceEvents?: boolean;
}

/** Events of a {@link Subscription}. */
export interface SubscriptionEvents {
  /** A message of the room, delivered once and in offset order. */
  message: ReceivedMessage;
  /** A connection joined the room (with `presenceEvents`). */
  memberJoined: MemberJoined;
  /** A connection left the room (with `presenceEvents`). */
  memberLeft: MemberLeft;
  /** A backend sent a notification to the room. */
  notification: ReceivedNotification;
  /**
   * The room was joined again after a reconnect. `recovered` tells whether
   * every missed message was delivered (`missed` of them).
   */
  rejoined: { recovered: boolean; missed: number; position: StreamPosition };
  /**
   * After a reconnect the missed messages could not be recovered (the epoch
   * changed or history no longer reaches back): messages after `since` up to
   * `position` were lost to this subscription. Live delivery continues after
   * `position`; reload from `client.history` if needed.
   */
  recoveryFailed: { since: StreamPosition; position: StreamPosition };
  /**
   * The iterator reached a point where messages were dropped because its
   * buffer was full: the messages after `lastOffset` (of `epoch`) up to the
   * next one the iterator yields are missing from it. Emitted in order, just
   * before that next message; read them back with
   * `client.history(room, { after: lastOffset })`. Listeners saw them all.
   */
  overflow: { lastOffset: bigint; epoch: string };
  /**
   * The subscription ended: left, unsubscribed by a backend, client closed,
   * or ended by `error`.
   */
  closed: { error?: Error };
}

/** What a subscription needs from its client. */
export interface SubscriptionOwner {
  readonly codec: PayloadCodec;
  leaveRoom(sub: Subscription, ignoreNotJoined: boolean): Promise<void>;
  publishTo(room: string, content: Content, idempotencyKey?: string): Promise<PublishReply>;
}

/**
 * A joined room: returned by `Client.join`, or handed to the client's
 * `subscribed` listeners when a backend subscribed the connection to the
 * room (HTTP API). Iterate it (`for await (const msg of sub)`) to read its
 * messages, or listen to its events; both see every message once, in offset
 * order. Use one iterator at a time; breaking out of the loop does not leave
 * the room (call `leave()`).
 *
 * Undelivered messages wait in a buffer of `bufferSize` messages (option of
 * `Client.connect`, default 1024). When it is full, newer messages are not
 * buffered: the iterator yields everything up to the drop, then an `overflow`
 * event says after which offset messages are missing, then continues with the
 * messages that arrived once there was room again. Listeners are called as
 * messages arrive and are not affected by the buffer.
 */
export class Subscription extends Emitter<SubscriptionEvents> implements AsyncIterable<ReceivedMessage> {
  /** The room. */
  readonly room: string;

  private readonly owner: SubscriptionOwner;
  private presence: boolean;
  private readonly queue: BoundedQueue<ReceivedMessage | OverflowMark>;
  /** Offset of the last message delivered to the app: recovery restarts after it. */
  private lastOffset = 0n;
  /** Epoch `lastOffset` belongs to. */
  private epoch = "";
  /** Whether the last join reply recovered what was asked. */
  private wasRecovered = false;
  /** Live pushes that arrived while a join was in flight; applied after its reply. */
  private held: RoomMessage[] = [];
  /** Whether live pushes were dropped because `held` was full. */
  private heldOverflow = false;
  private joining = true;
  /** The `since` of the join in flight, and whether it is a rejoin (for a `Subscribed` push). */
  private pendingSince: StreamPosition | undefined = undefined;
  private pendingRejoin = false;
  private ended = false;

  /** @internal */
  constructor(owner: SubscriptionOwner, room: string, presenceEvents: boolean, bufferSize: number) {
    super();
    this.owner = owner;
    this.room = room;
    this.presence = presenceEvents;
    this.queue = new BoundedQueue(bufferSize);
  }

  /**
   * Whether presence events were asked for: by the app's `join`, or by the
   * backend that subscribed the connection (see the client's `subscribed`
   * event). Rejoins after a reconnect ask for the same.
   */
  get presenceEvents(): boolean {
    return this.presence;
  }

  /** Position of the last message delivered (offset 0 before any). */
  get position(): StreamPosition {
    return create(StreamPositionSchema, { offset: this.lastOffset, epoch: this.epoch });
  }

  /**
   * Whether the last join recovered every message after its `since`
   * (false when no `since` was given).
   */
  get recovered(): boolean {
    return this.wasRecovered;
  }

  /** False once left or closed. */
  get active(): boolean {
    return !this.ended;
  }

  /** Messages waiting in the iterator's buffer. */
  get buffered(): number {
    return this.queue.size;
  }

  /** Publishes to this room (see `Client.publish`). */
  publish(content: Content, options: { idempotencyKey?: string } = {}): Promise<PublishReply> {
    return this.owner.publishTo(this.room, content, options.idempotencyKey);
  }

  /**
   * Leaves the room: no more messages are delivered; the iterator finishes
   * after the buffered ones. Resolves when the server confirmed (at once when
   * the client is closed).
   */
  leave(): Promise<void> {
    return this.owner.leaveRoom(this, true);
  }

  [Symbol.asyncIterator](): AsyncIterator<ReceivedMessage, undefined> {
    return {
      next: async () => {
        for (;;) {
          const r = await this.queue.next();
          if (r.done === true || !(r.value instanceof OverflowMark)) {
            return r as IteratorResult<ReceivedMessage, undefined>;
          }
          this.emit("overflow", { lastOffset: r.value.lastOffset, epoch: r.value.epoch });
        }
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }

  // ---- driven by the client ----

  /** The position to rejoin from, or undefined before the first join reply. @internal */
  resumePosition(): StreamPosition | undefined {
    return this.epoch === "" && this.lastOffset === 0n ? undefined : this.position;
  }

  /**
   * A join (initial or rejoin) asking to recover from `since` is about to be
   * sent: hold live pushes until its reply. @internal
   */
  beginJoin(since?: StreamPosition, rejoin = false): void {
    this.joining = true;
    this.pendingSince = since;
    this.pendingRejoin = rejoin;
    this.held = [];
    this.heldOverflow = false;
  }

  /** Whether a join is in flight (no reply applied since `beginJoin`). @internal */
  get joinPending(): boolean {
    return this.joining;
  }

  /**
   * Applies a `Subscribed` push: a backend made the connection a member of
   * the room at `position` (HTTP API), with or without presence events. For
   * a new subscription it is the start; while a join of the room is in
   * flight, the server took the subscription first and refuses that join
   * (ALREADY_JOINED), so the push stands for its reply: the membership is
   * the backend's, and nothing after the join's `since` is recovered (a
   * rejoin reports `recoveryFailed`). @internal
   */
  applySubscribed(push: Subscribed): void {
    this.presence = push.presenceEvents;
    const position = push.position;
    this.applyJoin(create(JoinReplySchema, { position, recovered: false }), this.pendingSince, this.pendingRejoin);
  }

  /**
   * Applies a join reply; `since` is the position the join asked to recover
   * from. Returns how many messages it delivered. @internal
   */
  applyJoin(reply: JoinReply, since: StreamPosition | undefined, rejoin: boolean): number {
    const position = reply.position ?? create(StreamPositionSchema);
    this.wasRecovered = since !== undefined && reply.recovered;
    if (since !== undefined && reply.recovered) {
      // The replayed messages follow `since` (for a rejoin: our own position).
      this.epoch = since.epoch;
      this.lastOffset = since.offset;
    } else {
      if (rejoin && since !== undefined) {
        this.emit("recoveryFailed", { since, position });
      }
      this.epoch = position.epoch;
      this.lastOffset = position.offset;
    }
    let delivered = 0;
    for (const m of reply.messages) {
      if (this.deliver(m)) delivered++;
    }
    this.joining = false;
    this.pendingSince = undefined;
    this.pendingRejoin = false;
    const held = this.held;
    this.held = [];
    for (const m of held) {
      this.deliver(m);
    }
    if (this.heldOverflow) {
      this.heldOverflow = false;
      this.markOverflow(this.lastOffset);
    }
    if (rejoin) {
      this.emit("rejoined", { recovered: this.wasRecovered, missed: delivered, position });
    }
    return delivered;
  }

  /** A live message push for this room. @internal */
  push(m: RoomMessage): void {
    if (this.ended) {
      return;
    }
    if (this.joining) {
      // Held until the join reply; when full, newer ones are dropped like
      // the iterator's (marked once the held ones are delivered).
      if (this.held.length < this.queue.capacity) {
        this.held.push(m);
      } else {
        this.heldOverflow = true;
      }
      return;
    }
    this.deliver(m);
  }

  /** Delivers a message unless it was already delivered (dedupe by offset). @internal */
  deliver(m: RoomMessage): boolean {
    if (this.ended || m.offset <= this.lastOffset) {
      return false;
    }
    const previous = this.lastOffset;
    this.lastOffset = m.offset;
    const received = this.owner.codec.roomMessage(m);
    if (!this.queue.push(received)) {
      this.markOverflow(previous);
    }
    this.emit("message", received);
    return true;
  }

  /** Marks, once per run of drops, that messages after `lastOffset` were dropped. */
  private markOverflow(lastOffset: bigint): void {
    if (!(this.queue.last() instanceof OverflowMark)) {
      this.queue.pushOver(new OverflowMark(lastOffset, this.epoch));
    }
  }

  /** A presence or notification push for this room. @internal */
  event<K extends "memberJoined" | "memberLeft" | "notification">(kind: K, value: SubscriptionEvents[K]): void {
    if (!this.ended) {
      this.emit(kind, value);
    }
  }

  /** Ends the subscription; the iterator throws `error` after the buffered messages. @internal */
  end(error?: Error): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this.held = [];
    this.heldOverflow = false;
    this.queue.end(error);
    this.emit("closed", error ? { error } : {});
  }
}
