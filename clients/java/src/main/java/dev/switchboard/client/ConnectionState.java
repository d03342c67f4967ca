package dev.switchboard.client;

/** Where a {@link Client} is in its life. */
public enum ConnectionState {
  /** Opening the first connection (until {@link Client#connect} completes). */
  CONNECTING,
  /** Connected, authenticated, every room rejoined: commands flow. */
  CONNECTED,
  /** The connection dropped; waiting for the next attempt. Commands wait (within timeouts). */
  RECONNECTING,
  /**
   * Closed for good: by {@link Client#close()}, a terminal close code or a refused login.
   * Commands fail with {@link ConnectionClosedException}.
   */
  CLOSED
}
