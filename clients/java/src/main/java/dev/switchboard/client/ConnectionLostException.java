package dev.switchboard.client;

/**
 * The connection dropped while this command was in flight, and the command is not safe to send
 * again: it may or may not have taken effect.
 *
 * <p>Only {@code publish} without an idempotency key and {@code direct} fail this way. Give a
 * publish an idempotency key and the SDK sends it again after reconnecting (the server delivers
 * it once).
 */
public final class ConnectionLostException extends SwitchboardException {
  private static final long serialVersionUID = 1L;

  /** The command whose outcome is unknown. */
  private final String command;

  ConnectionLostException(String command) {
    super("connection lost while " + command + " was in flight; its outcome is unknown");
    this.command = command;
  }

  /**
   * The command whose outcome is unknown.
   *
   * @return "publish" or "direct"
   */
  public String getCommand() {
    return command;
  }
}
