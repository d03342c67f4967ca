package dev.switchboard.client;

/**
 * Base class of every error the SDK reports. Futures returned by {@link Client} complete
 * exceptionally with one of its subclasses ({@link java.util.concurrent.CompletableFuture#join()}
 * wraps it in a {@link java.util.concurrent.CompletionException}, {@code get()} in an {@link
 * java.util.concurrent.ExecutionException}).
 *
 * <p>Every error a publish fails with carries the publish's idempotency key ({@link
 * #getIdempotencyKey()}): publishing the same content again with it is safe whatever the
 * outcome of the first call was.
 */
public class SwitchboardException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /**
   * The key of the publish that failed with this error, or null. Set once, by the SDK, before
   * the error reaches the app: each publish fails with an instance of its own.
   */
  private String idempotencyKey;

  /**
   * Creates an error with a message.
   *
   * @param message what went wrong
   */
  public SwitchboardException(String message) {
    super(message);
  }

  /**
   * Creates an error with a message and a cause.
   *
   * @param message what went wrong
   * @param cause the underlying failure
   */
  public SwitchboardException(String message, Throwable cause) {
    super(message, cause);
  }

  /**
   * The idempotency key of the publish that failed with this error: the app's own, or the one
   * the SDK generated for the call. When the outcome is unknown ({@code
   * ERROR_CODE_OUTCOME_UNKNOWN}, {@link CommandTimeoutException}, {@link
   * ConnectionLostException}), publish the same content again with this key: if the first
   * attempt was applied, the retry returns its acknowledgement with {@code duplicate} set, and
   * the message is delivered once.
   *
   * @return the key, or null for an error of another command
   */
  public String getIdempotencyKey() {
    return idempotencyKey;
  }

  /** Marks this error as a publish's (see {@link #idempotencyKey}). */
  void setIdempotencyKey(String key) {
    this.idempotencyKey = key;
  }
}
