package dev.switchboard.client;

import java.time.Duration;

/**
 * A command got no reply within its timeout, which includes any time spent waiting for a slot
 * (see {@link ClientOptions.Builder#maxInFlight}) or for the connection to come back.
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
