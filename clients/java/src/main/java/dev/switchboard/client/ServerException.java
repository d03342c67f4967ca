package dev.switchboard.client;

import dev.switchboard.v1.ErrorCode;

/**
 * The server answered a command with an {@code Error}. The connection stays usable.
 *
 * <p>Match on {@link #getCode()} (never on the message): for example {@code
 * ErrorCode.ERROR_CODE_NOT_JOINED}. {@link #isTemporary()} tells whether the same command may
 * succeed if retried later (with backoff); {@link #getRetryAfterMs()} is set for {@code
 * ERROR_CODE_RATE_LIMITED}.
 *
 * <p>Two temporary codes say what became of the command when the server's broker failed:
 *
 * <ul>
 *   <li>{@code ERROR_CODE_UNAVAILABLE}: not carried out, no effect. Retry later.
 *   <li>{@code ERROR_CODE_OUTCOME_UNKNOWN}: handed to the broker, which did not confirm it in
 *       time; it may or may not have taken effect. Retry a publish with the same idempotency key
 *       ({@link #getIdempotencyKey()}): if the first attempt was applied, the retry returns its
 *       result with {@code duplicate} set, and nothing is delivered twice.
 * </ul>
 *
 * <p>The client retries a publish answered with either code by itself (see {@link
 * ClientOptions.Builder#publishRetries}); a publish fails with them once its retries are spent.
 */
public final class ServerException extends SwitchboardException {
  private static final long serialVersionUID = 1L;

  /** The wire value of the code, kept even when this SDK does not know it. */
  private final int codeNumber;
  /** The server's human-readable detail, for logs. */
  private final String serverMessage;
  /** Whether retrying the same command later may succeed. */
  private final boolean temporary;
  /** For rate limiting: how long to wait before retrying. */
  private final int retryAfterMs;
  /** The command that failed ("publish", "join", ...). */
  private final String command;

  ServerException(dev.switchboard.v1.Error error, String command) {
    super(describe(error, command));
    this.codeNumber = error.getCodeValue();
    this.serverMessage = error.getMessage();
    this.temporary = error.getTemporary();
    this.retryAfterMs = error.getRetryAfterMs();
    this.command = command;
  }

  private static String describe(dev.switchboard.v1.Error error, String command) {
    String kind = error.getTemporary() ? "temporary" : "terminal";
    String prefix = command.isEmpty() ? "" : command + " failed: ";
    return prefix + codeName(error.getCodeValue()) + " (" + kind + "): " + error.getMessage();
  }

  private static String codeName(int number) {
    ErrorCode code = ErrorCode.forNumber(number);
    return code != null ? code.name() : "ERROR_CODE_" + number;
  }

  /**
   * The error code.
   *
   * @return the code, or {@link ErrorCode#UNRECOGNIZED} for a code newer than this SDK (see
   *     {@link #getCodeNumber()})
   */
  public ErrorCode getCode() {
    ErrorCode code = ErrorCode.forNumber(codeNumber);
    return code != null ? code : ErrorCode.UNRECOGNIZED;
  }

  /**
   * The code's wire value.
   *
   * @return the number of the code
   */
  public int getCodeNumber() {
    return codeNumber;
  }

  /**
   * The code's name.
   *
   * @return e.g. "ERROR_CODE_NOT_JOINED"
   */
  public String getCodeName() {
    return codeName(codeNumber);
  }

  /**
   * The server's detail message; for logs, not for matching.
   *
   * @return the message
   */
  public String getServerMessage() {
    return serverMessage;
  }

  /**
   * Whether the same command may succeed if retried later.
   *
   * @return true for retryable errors
   */
  public boolean isTemporary() {
    return temporary;
  }

  /**
   * How long to wait before retrying, for {@code ERROR_CODE_RATE_LIMITED} (the server's {@code
   * retry_after_ms}). The command was not carried out and the SDK does not retry it by itself:
   * send it again after this long. A connection that keeps exceeding the limit is closed with
   * 4003, and the client reconnects after its backoff.
   *
   * @return milliseconds, 0 for other errors
   */
  public int getRetryAfterMs() {
    return retryAfterMs;
  }

  /**
   * The command that failed.
   *
   * @return e.g. "publish"
   */
  public String getCommand() {
    return command;
  }
}
