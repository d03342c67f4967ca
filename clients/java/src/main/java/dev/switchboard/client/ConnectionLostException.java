package dev.switchboard.client;

/**
 * The connection dropped while this command was in flight, and the command is not safe to send
 * again: it may or may not have taken effect.
 *
 * <p>Only {@code publish} without the app's own idempotency key and {@code direct} fail this way.
 * A publish's error carries the key the client generated for it ({@link #getIdempotencyKey()}):
 * publish the same content again with it, and the server delivers it once. Give a publish a key
 * of your own and the SDK sends it again after reconnecting by itself.
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
