/**
 * Switchboard client SDK: the {@link Client}, its {@link Subscription}s, the
 * {@link ServerApi} client of the HTTP server API, the error types, and every
 * generated type of the `switchboard.v1` protocol.
 *
 * This is the entry point for browsers and other runtimes with a global
 * `WebSocket`; under Node the package's "node" export (`node.ts`) adds the
 * `ws` package as the default implementation.
 */
export { Client } from "./client.js";
export type {
  Auth,
  ClientEvents,
  ClientOptions,
  ConnectionState,
  HistoryOptions,
  HistoryPage,
  StateChange,
} from "./client.js";
export { Subscription } from "./subscription.js";
export type { JoinOptions, SubscriptionEvents } from "./subscription.js";
export type {
  Content,
  PayloadInit,
  ReceivedDirectMessage,
  ReceivedMessage,
  ReceivedNotification,
  ReceivedPayload,
} from "./payload.js";
export { ConnectionError, ServerError, SwitchboardError, TimeoutError, errorCodeName } from "./errors.js";
export { backoffDelay, DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_MAX_MS } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { newIdempotencyKey } from "./publish.js";
export { shouldReconnect } from "./close_codes.js";
export { ServerApi, ServerApiError } from "./server-api.js";
export type {
  ApiHistoryOptions,
  ApiPublishOptions,
  ApiSendOptions,
  ApiSubscribeOptions,
  ServerApiEncoding,
  ServerApiOptions,
} from "./server-api.js";
export type { Listener } from "./emitter.js";
export type { WebSocketConstructor, WebSocketLike } from "./websocket.js";

// The generated protocol types (`switchboard.v1`), and the HTTP server API's bodies.
export * from "./gen/switchboard/v1/api_pb.js";
export * from "./gen/switchboard/v1/close_codes_pb.js";
export * from "./gen/switchboard/v1/commands_pb.js";
export * from "./gen/switchboard/v1/envelope_pb.js";
export * from "./gen/switchboard/v1/errors_pb.js";
export * from "./gen/switchboard/v1/pushes_pb.js";
export * from "./gen/switchboard/v1/types_pb.js";
