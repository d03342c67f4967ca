import { create, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, Message, Registry } from "@bufbuild/protobuf";
import type { Payload } from "./gen/switchboard/v1/types_pb.js";
import { PayloadSchema } from "./gen/switchboard/v1/types_pb.js";
import type { DirectMessage, Notification, RoomMessage } from "./gen/switchboard/v1/pushes_pb.js";

/**
 * What can be published or sent:
 * - a string: a text payload;
 * - a generated message of a registered type (e.g. `create(ChatMessageSchema, …)`):
 *   `data` = its binary encoding, `type_name` = its full name;
 * - a `Payload` message, or a {@link PayloadInit} that may combine `text` with a
 *   typed `value` (or raw `data` plus `typeName`).
 */
export type Content = string | Message | PayloadInit;

/** The fields of a payload, with an optional typed `value` encoded into `data`. */
export interface PayloadInit {
  /** Plain text. */
  text?: string;
  /** Raw application bytes (ignored when `value` is given). */
  data?: Uint8Array;
  /** Protobuf type name of `data` (ignored when `value` is given). */
  typeName?: string;
  /** A generated message of a registered type. */
  value?: Message;
}

/** The content of a received message, decoded. */
export interface ReceivedPayload {
  /** The payload as it arrived. */
  readonly payload: Payload;
  /** `payload.text`. */
  readonly text: string;
  /** `payload.type_name`; empty for text-only or opaque payloads. */
  readonly typeName: string;
  /** `payload.data`, the raw bytes. */
  readonly data: Uint8Array;
  /**
   * The decoded message when `typeName` is registered (narrow it with
   * `isMessage(msg.value, ChatMessageSchema)`); undefined when the type is not
   * registered, there is no type, or the bytes do not decode.
   */
  readonly value: Message | undefined;
}

/** A message of a room, from a subscription, a recovery or history. */
export interface ReceivedMessage extends ReceivedPayload {
  /** The room. */
  readonly room: string;
  /** Offset in the room (1, 2, 3, …). */
  readonly offset: bigint;
  /** Server-assigned message id. */
  readonly id: bigint;
  /** User id of the publisher. */
  readonly sender: string;
  /** Server time of the publish, in ms since the Unix epoch. */
  readonly timestampMs: bigint;
  /** The generated message as received. */
  readonly raw: RoomMessage;
}

/** A direct message to this user. */
export interface ReceivedDirectMessage extends ReceivedPayload {
  /** Server-assigned message id. */
  readonly id: bigint;
  /** User id of the sender. */
  readonly sender: string;
  /** Server time of the send, in ms since the Unix epoch. */
  readonly timestampMs: bigint;
  /** The generated message as received. */
  readonly raw: DirectMessage;
}

/** A notification from a backend, to this user (`room` empty) or to a joined room. */
export interface ReceivedNotification extends ReceivedPayload {
  /** Server-assigned notification id. */
  readonly id: bigint;
  /** The room, or empty when sent to the user. */
  readonly room: string;
  /** Server time, in ms since the Unix epoch. */
  readonly timestampMs: bigint;
  /** The generated message as received. */
  readonly raw: Notification;
}

/** Encodes and decodes payloads with the application's registered types. */
export class PayloadCodec {
  constructor(private readonly registry: Registry | undefined) {}

  /** The schema registered for `typeName`, if any. */
  schema(typeName: string): DescMessage | undefined {
    return typeName === "" ? undefined : this.registry?.getMessage(typeName);
  }

  /** Builds the wire payload for `content`; throws a TypeError for an unregistered typed message. */
  encode(content: Content): Payload {
    if (typeof content === "string") {
      return create(PayloadSchema, { text: content });
    }
    if (isMessage(content, PayloadSchema)) {
      return content;
    }
    if (isMessage(content)) {
      return create(PayloadSchema, this.encodeValue(content));
    }
    const init = content;
    if (init.value !== undefined) {
      return create(PayloadSchema, { text: init.text ?? "", ...this.encodeValue(init.value) });
    }
    return create(PayloadSchema, {
      text: init.text ?? "",
      data: init.data ?? new Uint8Array(0),
      typeName: init.typeName ?? "",
    });
  }

  private encodeValue(value: Message): { data: Uint8Array; typeName: string } {
    const schema = this.schema(value.$typeName);
    if (!schema) {
      throw new TypeError(
        `switchboard: type ${value.$typeName} is not registered; pass its schema in options.types`,
      );
    }
    return { data: toBinary(schema, value), typeName: value.$typeName };
  }

  /** Decodes the typed value of a payload, or undefined (never throws). */
  decodeValue(payload: Payload | undefined): Message | undefined {
    if (!payload) {
      return undefined;
    }
    const schema = this.schema(payload.typeName);
    if (!schema) {
      return undefined;
    }
    try {
      return fromBinary(schema, payload.data);
    } catch {
      return undefined;
    }
  }

  private received(payload: Payload | undefined): ReceivedPayload {
    const p = payload ?? create(PayloadSchema);
    return {
      payload: p,
      text: p.text,
      typeName: p.typeName,
      data: p.data,
      value: this.decodeValue(p),
    };
  }

  /** Wraps a room message. */
  roomMessage(raw: RoomMessage): ReceivedMessage {
    return {
      ...this.received(raw.payload),
      room: raw.room,
      offset: raw.offset,
      id: raw.id,
      sender: raw.sender,
      timestampMs: raw.timestampMs,
      raw,
    };
  }

  /** Wraps a direct message. */
  directMessage(raw: DirectMessage): ReceivedDirectMessage {
    return {
      ...this.received(raw.payload),
      id: raw.id,
      sender: raw.sender,
      timestampMs: raw.timestampMs,
      raw,
    };
  }

  /** Wraps a notification. */
  notification(raw: Notification): ReceivedNotification {
    return {
      ...this.received(raw.payload),
      id: raw.id,
      room: raw.room,
      timestampMs: raw.timestampMs,
      raw,
    };
  }
}
