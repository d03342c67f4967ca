package dev.switchboard.client;

import java.time.Duration;

/**
 * Which page {@link Client#history(String, HistoryOptions)} reads. Immutable; build with {@link
 * #builder()} or the shortcuts.
 *
 * <p>Without {@code after}: the newest {@code limit} messages older than {@code before} (0: no
 * bound); page backwards by passing the smallest offset you have as {@code before}. With {@code
 * after}: the oldest {@code limit} messages newer than it. {@code limit} 0 means the server's
 * default page size. Offsets are unsigned 64-bit values.
 */
public final class HistoryOptions {
  /** The newest page of the server's default size. */
  public static final HistoryOptions DEFAULT = builder().build();

  /** Page size, 0 for the server's default. */
  private final int limit;
  /** Exclusive upper bound on offsets, 0 for none. */
  private final long before;
  /** Exclusive lower bound on offsets, 0 for none. */
  private final long after;
  /** Overrides the client's command timeout, or null. */
  private final Duration timeout;

  private HistoryOptions(Builder b) {
    this.limit = b.limit;
    this.before = b.before;
    this.after = b.after;
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
   * The oldest messages newer than an offset, e.g. the ones an {@link GapReason#OVERFLOW} gap
   * skipped.
   *
   * @param after exclusive lower bound
   * @return the options
   */
  public static HistoryOptions after(long after) {
    return builder().after(after).build();
  }

  /**
   * The newest messages older than an offset.
   *
   * @param before exclusive upper bound
   * @return the options
   */
  public static HistoryOptions before(long before) {
    return builder().before(before).build();
  }

  /**
   * The page size.
   *
   * @return the limit, 0 for the server's default
   */
  public int getLimit() {
    return limit;
  }

  /**
   * The exclusive upper bound.
   *
   * @return the offset, 0 for none
   */
  public long getBefore() {
    return before;
  }

  /**
   * The exclusive lower bound.
   *
   * @return the offset, 0 for none
   */
  public long getAfter() {
    return after;
  }

  /**
   * The read's timeout.
   *
   * @return the timeout, or null for the client's command timeout
   */
  public Duration getTimeout() {
    return timeout;
  }

  /** Builds {@link HistoryOptions}. */
  public static final class Builder {
    private int limit;
    private long before;
    private long after;
    private Duration timeout;

    private Builder() {}

    /**
     * The page size; larger values are capped by the server.
     *
     * @param limit 0 for the server's default
     * @return this builder
     */
    public Builder limit(int limit) {
      if (limit < 0) {
        throw new IllegalArgumentException("limit must be >= 0, got " + limit);
      }
      this.limit = limit;
      return this;
    }

    /**
     * Only messages with a smaller offset.
     *
     * @param before exclusive upper bound; 0 for none
     * @return this builder
     */
    public Builder before(long before) {
      this.before = before;
      return this;
    }

    /**
     * Only messages with a larger offset, oldest first.
     *
     * @param after exclusive lower bound; 0 for none
     * @return this builder
     */
    public Builder after(long after) {
      this.after = after;
      return this;
    }

    /**
     * Overrides the client's command timeout for this read.
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
    public HistoryOptions build() {
      return new HistoryOptions(this);
    }
  }
}
