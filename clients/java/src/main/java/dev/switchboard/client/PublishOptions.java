package dev.switchboard.client;

import java.time.Duration;

/**
 * Options of {@link Client#publish(String, Content, PublishOptions)}. Immutable; build with
 * {@link #builder()}.
 */
public final class PublishOptions {
  /** No key of the app's (the client generates one), the client's command timeout. */
  public static final PublishOptions DEFAULT = builder().build();

  /** The app's idempotency key, or empty. */
  private final String idempotencyKey;
  /** Overrides the client's command timeout, or null. */
  private final Duration timeout;

  private PublishOptions(Builder b) {
    this.idempotencyKey = b.idempotencyKey;
    this.timeout = b.timeout;
  }

  /**
   * A builder with the defaults.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * The app's idempotency key.
   *
   * @return the key, empty when the client generates one
   */
  public String getIdempotencyKey() {
    return idempotencyKey;
  }

  /**
   * The publish's timeout.
   *
   * @return the timeout, or null for the client's command timeout
   */
  public Duration getTimeout() {
    return timeout;
  }

  /** Builds {@link PublishOptions}. */
  public static final class Builder {
    private String idempotencyKey = "";
    private Duration timeout;

    private Builder() {}

    /**
     * The app's idempotency key (at most 256 bytes), e.g. an order id, or the key of a failed
     * publish ({@link SwitchboardException#getIdempotencyKey()}): a publish with the same key
     * (from the same user, to the same room, within the server's idempotency window) returns the
     * first result ({@code duplicate} set) and is delivered once. With the app's key, a publish
     * cut off by a lost connection is also sent again after the reconnect; without one it fails
     * with {@link ConnectionLostException}, which carries the generated key.
     *
     * @param idempotencyKey the key; null or empty to have the client generate one for the call
     * @return this builder
     */
    public Builder idempotencyKey(String idempotencyKey) {
      this.idempotencyKey = idempotencyKey == null ? "" : idempotencyKey;
      return this;
    }

    /**
     * Overrides the client's command timeout for this publish.
     *
     * @param timeout positive
     * @return this builder
     */
    public Builder timeout(Duration timeout) {
      this.timeout = Durations.positive(timeout, "timeout");
      return this;
    }

    /**
     * The options.
     *
     * @return immutable options
     */
    public PublishOptions build() {
      return new PublishOptions(this);
    }
  }
}
