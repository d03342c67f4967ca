package dev.switchboard.client;

import java.time.Duration;

/**
 * Options of {@link Client#publish(String, Content, PublishOptions)}. Immutable; build with
 * {@link #builder()}.
 */
public final class PublishOptions {
  /** No idempotency key, the client's command timeout. */
  public static final PublishOptions DEFAULT = builder().build();

  /** The idempotency key, or empty. */
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
   * The idempotency key.
   *
   * @return the key, empty when none
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
     * An idempotency key (at most 256 bytes): a retried publish with the same key returns the
     * first result ({@code duplicate} set) and is delivered once. With a key, a publish cut off
     * by a lost connection is sent again after the reconnect; without one it fails with {@link
     * ConnectionLostException}.
     *
     * @param idempotencyKey the key; null or empty for none
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
