package dev.switchboard.client;

/**
 * Receives a client's events. Every method has an empty default; override what you need and pass
 * the listener to {@link ClientOptions.Builder#listener}.
 *
 * <p>Calls come from the client's callback executor, one at a time and in order (see {@link
 * ClientOptions.Builder#callbackExecutor}); never from the thread that reads the socket. A slow
 * listener delays later callbacks of this client but never the connection: direct messages and
 * notifications wait in buffers of {@code bufferSize} each, dropping the oldest when full.
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
}
