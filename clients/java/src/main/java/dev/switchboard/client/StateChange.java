package dev.switchboard.client;

import java.time.Duration;

/** A connection state transition, as passed to {@link ClientListener#onStateChange}. */
public final class StateChange {
  /** The new state. */
  private final ConnectionState state;
  /** The close code that caused RECONNECTING or CLOSED. */
  private final Integer code;
  /** The close reason or failure. */
  private final String reason;
  /** RECONNECTING: the attempt about to be made. */
  private final int attempt;
  /** RECONNECTING: the wait before that attempt. */
  private final Duration delay;
  /** CLOSED: what ended the client. */
  private final SwitchboardException error;

  StateChange(
      ConnectionState state,
      Integer code,
      String reason,
      int attempt,
      Duration delay,
      SwitchboardException error) {
    this.state = state;
    this.code = code;
    this.reason = reason;
    this.attempt = attempt;
    this.delay = delay;
    this.error = error;
  }

  static StateChange of(ConnectionState state) {
    return new StateChange(state, null, "", 0, Duration.ZERO, null);
  }

  /**
   * The new state.
   *
   * @return the state entered
   */
  public ConnectionState getState() {
    return state;
  }

  /**
   * The close code that caused RECONNECTING or CLOSED.
   *
   * @return the code (1006 for a connection that ended without a Close frame), or null when the
   *     connection failed without one (e.g. the server was unreachable) or for other states
   */
  public Integer getCode() {
    return code;
  }

  /**
   * The close reason or the failure, for logs.
   *
   * @return the reason, possibly empty
   */
  public String getReason() {
    return reason;
  }

  /**
   * For RECONNECTING: the number of the attempt about to be made.
   *
   * @return 1, 2, ...; 0 for other states
   */
  public int getAttempt() {
    return attempt;
  }

  /**
   * For RECONNECTING: how long the client waits before that attempt.
   *
   * @return the delay; zero for other states
   */
  public Duration getDelay() {
    return delay;
  }

  /**
   * For CLOSED: the error that ended the client.
   *
   * @return the error, or null after {@link Client#close()}
   */
  public SwitchboardException getError() {
    return error;
  }

  @Override
  public String toString() {
    StringBuilder s = new StringBuilder("StateChange(").append(state);
    if (code != null) {
      s.append(", code=").append(code);
    }
    if (!reason.isEmpty()) {
      s.append(", reason=").append(reason);
    }
    if (state == ConnectionState.RECONNECTING) {
      s.append(", attempt=").append(attempt).append(", delay=").append(delay);
    }
    if (error != null) {
      s.append(", error=").append(error);
    }
    return s.append(')').toString();
  }
}
