package dev.switchboard.client;

import java.time.Duration;

/** Small helpers for {@link Duration}s in options and messages. */
final class Durations {
  private Durations() {}

  /** "0.5 s", "10 s": how timeouts appear in messages. */
  static String describe(Duration d) {
    long millis = d.toMillis();
    if (millis % 1000 == 0) {
      return (millis / 1000) + " s";
    }
    return (millis / 1000.0) + " s";
  }

  /** Rejects null, zero and negative durations. */
  static Duration positive(Duration d, String what) {
    if (d == null || d.isZero() || d.isNegative()) {
      throw new IllegalArgumentException(what + " must be positive, got " + d);
    }
    return d;
  }
}
