package dev.switchboard.client;

import dev.switchboard.v1.MemberJoined;
import dev.switchboard.v1.MemberLeft;

/**
 * Receives a subscription's events (pass it to {@link JoinOptions.Builder#listener}). Every
 * method has an empty default; override what you need.
 *
 * <p>Calls come from the client's callback executor, one at a time, in the order the server sent
 * them: never from the thread that reads the socket. Messages arrive in offset order, each once,
 * across reconnects.
 */
public interface SubscriptionListener {
  /**
   * The room's next message. Not called when the subscription's messages are read through {@link
   * Subscription#messages()} ({@link JoinOptions.Delivery#PUBLISHER}).
   *
   * @param message the message
   */
  default void onMessage(Message message) {}

  /**
   * Messages were skipped here: the app fell {@code bufferSize} messages behind ({@link
   * GapReason#OVERFLOW}) or a reconnect could not recover what was missed ({@link
   * GapReason#RECOVERY_FAILED}). Called in order: after the messages before the gap, before those
   * after it.
   *
   * @param gap what was skipped; read it back with {@link Client#history}
   */
  default void onGap(Gap gap) {}

  /**
   * A connection joined the room (only when joined with {@link
   * JoinOptions.Builder#presenceEvents}).
   *
   * @param event the room and the member
   */
  default void onMemberJoined(MemberJoined event) {}

  /**
   * A connection left the room, by leaving or disconnecting (only with {@link
   * JoinOptions.Builder#presenceEvents}).
   *
   * @param event the room and the member
   */
  default void onMemberLeft(MemberLeft event) {}

  /**
   * A backend sent a notification to the room.
   *
   * @param notification the notification
   */
  default void onNotification(Notification notification) {}

  /**
   * The subscription ended, after everything buffered before the end was delivered: the room was
   * left, a backend unsubscribed the connection from it, the client was closed, or the server
   * ended the client for good.
   *
   * @param error null after {@link Subscription#leave()}, an unsubscribe or {@link
   *     Client#close()}; the reason
   *     otherwise (a {@link ConnectionClosedException}, or a {@link ServerException} when the room
   *     could not be rejoined after a reconnect)
   */
  default void onClosed(SwitchboardException error) {}
}
