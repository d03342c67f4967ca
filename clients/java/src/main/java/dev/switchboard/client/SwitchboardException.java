package dev.switchboard.client;

/**
 * Base class of every error the SDK reports. Futures returned by {@link Client} complete
 * exceptionally with one of its subclasses ({@link java.util.concurrent.CompletableFuture#join()}
 * wraps it in a {@link java.util.concurrent.CompletionException}, {@code get()} in an {@link
 * java.util.concurrent.ExecutionException}).
 */
public class SwitchboardException extends RuntimeException {
  private static final long serialVersionUID = 1L;

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
}
