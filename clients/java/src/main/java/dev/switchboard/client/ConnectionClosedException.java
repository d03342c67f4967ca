package dev.switchboard.client;

/**
 * The client is closed, or could not connect: no command can run.
 *
 * <p>{@link #getCode()} is the WebSocket close code when one is known: 1000 after {@link
 * Client#close()}, 1008 after an authentication failure or an expired token, 4500 when a backend
 * kicked the user, ...; null when the connection could not be opened at all.
 */
public final class ConnectionClosedException extends SwitchboardException {
  private static final long serialVersionUID = 1L;

  /** The close code, or null when no connection was made. */
  private final Integer code;
  /** The close reason or the failure, for logs. */
  private final String reason;

  ConnectionClosedException(Integer code, String reason) {
    this(code, reason, null);
  }

  ConnectionClosedException(Integer code, String reason, Throwable cause) {
    super(describe(code, reason), cause);
    this.code = code;
    this.reason = reason;
  }

  private static String describe(Integer code, String reason) {
    String text = code != null ? "connection closed (" + code + ")" : "connection failed";
    return reason.isEmpty() ? text : text + ": " + reason;
  }

  /**
   * The WebSocket close code.
   *
   * @return the code, or null when the connection could not be opened at all
   */
  public Integer getCode() {
    return code;
  }

  /**
   * The close reason or the failure.
   *
   * @return a human-readable reason, possibly empty
   */
  public String getReason() {
    return reason;
  }
}
