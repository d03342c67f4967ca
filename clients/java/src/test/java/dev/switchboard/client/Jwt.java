package dev.switchboard.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** HS256 tokens for the production-mode tests, signed here. */
final class Jwt {
  static final String SECRET = "test-secret-0123456789";

  private Jwt() {}

  /**
   * A token for {@code sub}.
   *
   * @param expiresAt seconds since the epoch, or null for no expiry
   */
  static String sign(String sub, String secret, Long expiresAt) {
    String header = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    String claims = "{\"sub\":\"" + sub + "\"" + (expiresAt == null ? "" : ",\"exp\":" + expiresAt)
        + "}";
    String signing = b64(header.getBytes(StandardCharsets.UTF_8)) + "."
        + b64(claims.getBytes(StandardCharsets.UTF_8));
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
      return signing + "." + b64(mac.doFinal(signing.getBytes(StandardCharsets.UTF_8)));
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String b64(byte[] data) {
    return Base64.getUrlEncoder().withoutPadding().encodeToString(data);
  }
}
