/**
 * Switchboard's Java SDK: one WebSocket (OkHttp) per {@link dev.switchboard.client.Client}, with
 * typed payloads, acknowledgements, history, presence and automatic recovery. Usable from Kotlin
 * and Android (Java 11 API level).
 *
 * <p>How the parts fit:
 *
 * <ul>
 *   <li>{@link dev.switchboard.client.Client}: the public API and the connection's life. OkHttp's
 *       reader thread decodes each {@code ServerFrame} and dispatches it under the client's lock:
 *       replies settle their {@code Call}, pushes go to the {@link
 *       dev.switchboard.client.Subscription} of their room or to the client's event queue (a
 *       backend's {@code Subscribed} push creates a subscription and queues it for {@code
 *       ClientListener.onSubscribed}; {@code Unsubscribed} ends it). It never runs app code and
 *       never waits for the app.
 *   <li>{@code Connection}, {@code Call}: one socket with its in-flight commands; one command
 *       with its timeout, retry rule and continuation.
 *   <li>{@code RetryingPublish}: one publish call, its idempotency key (the app's or a generated
 *       one) and its automatic retries after {@code ERROR_CODE_UNAVAILABLE} and {@code
 *       ERROR_CODE_OUTCOME_UNKNOWN}, each a command of its own.
 *   <li>{@link dev.switchboard.client.Subscription}: dedupe by offset, the bounded buffer with its
 *       overflow {@link dev.switchboard.client.Gap}, delivery to a {@link
 *       dev.switchboard.client.SubscriptionListener} or a {@link java.util.concurrent.Flow}
 *       subscriber.
 *   <li>{@code SerialExecutor}: runs every callback and future completion of a client one at a
 *       time, in order, on the client's callback thread or the app's executor.
 *   <li>A timer thread (command timeouts, reconnect and publish retry delays) and OkHttp's
 *       dispatcher threads, owned by the client and ended by {@link
 *       dev.switchboard.client.Client#close()}.
 *   <li>{@link dev.switchboard.client.Backoff}, {@link dev.switchboard.client.CloseCodes}: the
 *       reconnect policy shared by every Switchboard SDK.
 *   <li>{@link dev.switchboard.client.TypeRegistry}, {@link dev.switchboard.client.Content},
 *       {@link dev.switchboard.client.Received}: typed application payloads.
 * </ul>
 *
 * <p>The protocol's generated types live in {@code dev.switchboard.v1} (with a Kotlin DSL:
 * {@code payload { text = "hi" }}); the ones this API takes or returns are used directly ({@code
 * PublishReply}, {@code StreamPosition}, {@code Member}, {@code MemberJoined}, {@code ErrorCode},
 * ...).
 */
package dev.switchboard.client;
