package dev.switchboard.client;

/**
 * Which WebSocket close codes end a client for good. The policy is the same in every Switchboard
 * SDK; see {@code CloseCode} in {@code close_codes.proto}.
 */
public final class CloseCodes {
  /** Reported when the connection ended without a Close frame (a network failure). */
  public static final int ABNORMAL_CLOSURE = 1006;

  private CloseCodes() {}

  /**
   * Whether a connection closed with {@code code} should be reconnected, when no {@code
   * Disconnect} push said otherwise.
   *
   * <p>Reconnect: network failures (no close, 1005, 1006), 1001 (going away), 1002, 1011 to 1014
   * (1013: overloaded, or too many connections for this user) and the application range 4000 to
   * 4499 (4003: sustained rate-limit violations). Terminal: 1000, 1003, 1007, 1008
   * (authentication, expired token, refused refresh), 1009, 4500 to 4999 and any other code.
   *
   * @param code the close code, or null when there was no Close frame at all
   * @return true to reconnect
   */
  public static boolean shouldReconnect(Integer code) {
    if (code == null) {
      return true;
    }
    switch (code) {
      case 1001:
      case 1002:
      case 1005:
      case 1006:
      case 1011:
      case 1012:
      case 1013:
      case 1014:
        return true;
      default:
        return code >= 4000 && code <= 4499;
    }
  }
}
