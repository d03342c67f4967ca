package dev.switchboard.client;

/** Why a subscription skipped messages (see {@link Gap}). */
public enum GapReason {
  /**
   * After a reconnect the server could not replay what was missed (the room's epoch changed, e.g.
   * a server restart, or its history no longer reaches back). Live messages continue from {@link
   * Gap#getPosition()}.
   */
  RECOVERY_FAILED,
  /**
   * The app read too slowly: the subscription's buffer was full and the newest messages after
   * {@link Gap#getLastOffset()} were dropped.
   */
  OVERFLOW
}
