package dev.switchboard.client;

import java.time.Duration;

/**
 * A command got no reply within its timeout, which includes any time spent waiting for a slot
 * (see {@link ClientOptions.Builder#maxInFlight}) or for the connection to come back.
 *
 * <p>A command that was sent may or may not have taken effect. For a publish, send it again with
 * its key ({@link #getIdempotencyKey()}): the server delivers it once.
 */
public final class CommandTimeoutException extends SwitchboardException {
  private static final long serialVersionUID = 1L;

  /** The command that timed out. */
  private final String command;
  /** The timeout that expired. */
  private final Duration timeout;

  CommandTimeoutException(String command, Duration timeout) {
    super(command + " timed out after " + Durations.describe(timeout));
    this.command = command;
    this.timeout = timeout;
  }

  /**
   * The command that timed out.
   *
   * @return e.g. "publish"
   */
  public String getCommand() {
    return command;
  }

  /**
   * The timeout that expired.
   *
   * @return the command's timeout
   */
  public Duration getTimeout() {
    return timeout;
  }
}
