/**
 * An event handler. Declared through a method so that implementations whose
 * handlers take a more specific event type (the DOM's `MessageEvent`, `ws`'s
 * `WebSocket.MessageEvent`) still fit.
 */
export type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"];

/**
 * The part of the WebSocket API the client uses: the browser's `WebSocket`,
 * the `ws` package's and any compatible implementation fit it.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: destroys the socket at once, without a close handshake. */
  terminate?: () => void;
}

/** A WebSocket constructor, e.g. `globalThis.WebSocket` or `ws`'s `WebSocket`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** WebSocket `readyState` of an open socket. */
export const WS_OPEN = 1;

/** Subprotocol of the binary protobuf encoding. */
export const SUBPROTOCOL = "switchboard.v1.proto";

let platformDefault: WebSocketConstructor | undefined;

/**
 * Sets the implementation used when `options.WebSocket` is not given. The
 * Node entry point (`dist/node.js`) sets the `ws` package here, so a browser
 * bundle never needs `ws`.
 */
export function setDefaultWebSocket(ctor: WebSocketConstructor | undefined): void {
  platformDefault = ctor;
}

/** Picks the WebSocket implementation: the option, the platform default, then the global. */
export function resolveWebSocket(option?: WebSocketConstructor): WebSocketConstructor {
  if (option) {
    return option;
  }
  if (platformDefault) {
    return platformDefault;
  }
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) {
    return global;
  }
  throw new Error(
    "switchboard: no WebSocket implementation found; pass options.WebSocket (e.g. the `ws` package's WebSocket)",
  );
}

/** Turns a received frame (ArrayBuffer, Node Buffer or view) into bytes, or undefined for text. */
export function frameBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) {
    return new Uint8Array(data);
  }
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (Array.isArray(data)) {
    // `ws` with binaryType "fragments"; not used, handled for completeness.
    const parts = data as Uint8Array[];
    const total = parts.reduce((n, p) => n + p.byteLength, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
  return undefined;
}
