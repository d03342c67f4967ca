package dev.switchboard.client;

/**
 * Receives a client's events. Every method has an empty default; override what you need and pass
 * the listener to {@link ClientOptions.Builder#listener}.
 *
 * <p>Calls come from the client's callback executor, one at a time and in order (see {@link
 * ClientOptions.Builder#callbackExecutor}); never from the thread that reads the socket. A slow
 * listener delays later callbacks of this client but never the connection: direct messages and
 * notifications wait in buffers of {@code bufferSize} each, dropping the oldest when full
 * (server-side subscriptions are never dropped).
 */
public interface ClientListener {
  /**
   * The connection state changed: every change from the first {@code CONNECTING} on, ending with
   * {@code CLOSED}.
   *
   * @param change the new state, with the close code and reason that caused it
   */
  default void onStateChange(StateChange change) {}

  /**
   * A direct message to this connection's user arrived.
   *
   * @param message the message
   */
  default void onDirectMessage(DirectMessage message) {}

  /**
   * A backend sent a notification to this user, or to a joined room whose subscription has no
   * listener (room notifications otherwise go to {@link SubscriptionListener#onNotification}).
   *
   * @param notification the notification
   */
  default void onNotification(Notification notification) {}

  /**
   * A backend subscribed this connection to a room through the HTTP API ({@code PUT
   * /api/v1/users/{user}/rooms/{room}}). The client created the room's subscription as {@link
   * Client#join(String)} would, live from the position the server pushed, and keeps it across
   * reconnects (rejoining with {@code since}) until it is left, the backend unsubscribes the user
   * ({@code DELETE}: the subscription ends as after a leave) or the client closes.
   *
   * <p>The subscription has no listener: its messages wait in its buffer (bounded by {@code
   * bufferSize}, see {@link Subscription}) until a subscriber of {@link Subscription#messages()}
   * requests them, so subscribe here. Called once per subscription; not for a room the client
   * joined itself (that subscription simply goes on).
   *
   * <pre>{@code
   * public void onSubscribed(Subscription sub) {
   *   sub.messages().subscribe(mySubscriber);
   * }
   * }</pre>
   *
   * @param subscription the new subscription; it may have ended already (then its buffered
   *     messages are still delivered, then the end)
   */
  default void onSubscribed(Subscription subscription) {}
}
