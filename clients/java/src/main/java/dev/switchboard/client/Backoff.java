package dev.switchboard.client;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.DoubleSupplier;

/**
 * Reconnect delays: exponential backoff with full jitter.
 *
 * <p>The delay before reconnect attempt {@code n} (0 for the first) is drawn uniformly from
 * {@code [0, min(maximum, initial * 2^n))}. The defaults are the protocol's: 0.5 s growing to
 * 20 s. Instances are immutable.
 */
public final class Backoff {
  /** The protocol's default: 0.5 s doubling up to 20 s. */
  public static final Backoff DEFAULT = new Backoff(Duration.ofMillis(500), Duration.ofSeconds(20));

  // 2^64 times any positive delay is far beyond any sane cap; stop growing the
  // exponent there so huge attempt counts cannot overflow.
  private static final int MAX_EXPONENT = 64;

  /** Upper bound of the first delay. */
  private final Duration initial;
  /** Upper bound of every delay. */
  private final Duration maximum;

  private Backoff(Duration initial, Duration maximum) {
    this.initial = initial;
    this.maximum = maximum;
  }

  /**
   * A full-jitter backoff.
   *
   * @param initial upper bound of the first delay; positive
   * @param maximum upper bound of every delay; at least {@code initial}
   * @return the backoff
   * @throws IllegalArgumentException if a bound is not positive or {@code initial > maximum}
   */
  public static Backoff of(Duration initial, Duration maximum) {
    Durations.positive(initial, "backoff initial delay");
    Durations.positive(maximum, "backoff maximum delay");
    if (initial.compareTo(maximum) > 0) {
      throw new IllegalArgumentException("backoff initial delay exceeds its maximum");
    }
    return new Backoff(initial, maximum);
  }

  /**
   * The upper bound of the first delay.
   *
   * @return the initial delay bound
   */
  public Duration getInitial() {
    return initial;
  }

  /**
   * The upper bound of every delay.
   *
   * @return the maximum delay
   */
  public Duration getMaximum() {
    return maximum;
  }

  /**
   * The upper bound of the delay before an attempt.
   *
   * @param attempt 0 for the first reconnect attempt
   * @return {@code min(maximum, initial * 2^attempt)}
   * @throws IllegalArgumentException if {@code attempt < 0}
   */
  public Duration ceiling(int attempt) {
    if (attempt < 0) {
      throw new IllegalArgumentException("attempt must be >= 0, got " + attempt);
    }
    double nanos = initial.toNanos() * Math.pow(2, Math.min(attempt, MAX_EXPONENT));
    return nanos >= maximum.toNanos() ? maximum : Duration.ofNanos((long) nanos);
  }

  /**
   * A random delay before an attempt.
   *
   * @param attempt 0 for the first reconnect attempt
   * @return a delay in {@code [0, ceiling(attempt))}
   */
  public Duration delay(int attempt) {
    return delay(attempt, () -> ThreadLocalRandom.current().nextDouble());
  }

  /**
   * A delay before an attempt, drawn with the given source of randomness.
   *
   * @param attempt 0 for the first reconnect attempt
   * @param random returns values in {@code [0, 1)}
   * @return {@code random * ceiling(attempt)}
   */
  public Duration delay(int attempt, DoubleSupplier random) {
    double fraction = random.getAsDouble();
    if (!(fraction >= 0 && fraction < 1)) {
      throw new IllegalArgumentException("random value out of [0, 1): " + fraction);
    }
    return Duration.ofNanos((long) (ceiling(attempt).toNanos() * fraction));
  }

  @Override
  public String toString() {
    return "Backoff(initial=" + initial + ", maximum=" + maximum + ")";
  }
}
