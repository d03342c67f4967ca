package dev.switchboard.client;

import dev.switchboard.v1.ClientFrame;
import dev.switchboard.v1.ServerFrame;
import java.time.Duration;
import java.util.concurrent.ScheduledFuture;

/**
 * A command on its way: waiting for a slot or for the connection, or sent and waiting for its
 * reply. The client's lock guards every mutable field; {@link #succeeded} and {@link #failed} run
 * exactly once, with the lock held.
 */
abstract class Call {
  /** The command's name, e.g. "publish", for errors. */
  final String command;
  /** The reply kind that answers it. */
  final ServerFrame.KindCase expected;
  /** The frame to send, without its request id. */
  final ClientFrame frame;
  /** Whether it may be sent again after a lost connection (it is safe to repeat). */
  final boolean retry;
  /** Its timeout. */
  final Duration timeout;
  /** Creation order: commands sent again after a reconnect keep their order. */
  final long seq;

  /** Settled: replied, failed, timed out or cancelled. */
  boolean done;
  /** Counts against the in-flight limit. */
  boolean holdsSlot;
  /** The connection it was sent on, and its request id there; null while not sent. */
  Connection connection;
  int requestId;
  /** Fires the timeout. */
  ScheduledFuture<?> timer;

  Call(
      String command,
      ServerFrame.KindCase expected,
      ClientFrame frame,
      boolean retry,
      Duration timeout,
      long seq) {
    this.command = command;
    this.expected = expected;
    this.frame = frame;
    this.retry = retry;
    this.timeout = timeout;
    this.seq = seq;
  }

  /** The matching reply arrived. */
  abstract void succeeded(ServerFrame reply);

  /** The command failed; {@code error} says how. */
  abstract void failed(SwitchboardException error);

  /** A handshake command (connect, rejoin): not subject to the in-flight limit. */
  boolean isHandshake() {
    return false;
  }
}
