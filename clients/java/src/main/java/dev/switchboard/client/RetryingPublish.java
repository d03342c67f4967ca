package dev.switchboard.client;

import dev.switchboard.v1.ClientFrame;
import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.PublishReply;
import dev.switchboard.v1.PublishRequest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One {@link Client#publish(String, Content, PublishOptions)} call: its attempts, the delays
 * between them, and the future the app holds.
 *
 * <p>Every publish carries an idempotency key, the app's or one generated here ({@link
 * #newKey()}), so the server applies it at most once however often it is sent. It is sent again,
 * with the same key, when the server answers {@code ERROR_CODE_UNAVAILABLE} (not carried out) or
 * {@code ERROR_CODE_OUTCOME_UNKNOWN} (the broker may have applied it), after a full-jitter delay
 * ({@link #BACKOFF}), at most {@code retries} times. Every attempt is a command of its own (request
 * id, timeout, in-flight slot). Other errors, timeouts and lost connections end the call: their
 * outcome is for the app to judge, with the key every failure carries. (A lost connection is the
 * client's business: it sends the app's own keys again after the reconnect, see {@link
 * Call#retry}.)
 *
 * <p>Attempts complete on the client's callback executor, and so does {@link #attempted}; a delay
 * runs on the client's timer, which hands the next attempt back to the callback executor, so no
 * app code runs on the timer. Cancelling {@link #result} cancels the attempt in flight or the
 * delay; closing the client fails a publish waiting out a delay.
 */
final class RetryingPublish {
  /** The delays between attempts: full jitter, 100 ms doubling up to 2 s. */
  static final Backoff BACKOFF = Backoff.of(Duration.ofMillis(100), Duration.ofSeconds(2));

  private static final Logger LOG = Logger.getLogger("dev.switchboard.client");
  private static final char[] HEX = "0123456789abcdef".toCharArray();
  private static final SecureRandom RANDOM = new SecureRandom();

  private final Client client;
  /** The publish, key included, sent as it is by every attempt. */
  private final ClientFrame frame;
  /** Whether an attempt cut off by a lost connection is sent again (the app gave the key). */
  private final boolean resend;
  /** Each attempt's timeout, or null for the client's. */
  private final Duration timeout;
  /** How many attempts may follow the first. */
  private final int retries;
  /** The key every attempt carries, and every failure. */
  private final String key;
  /** What the app holds. */
  final CompletableFuture<PublishReply> result = new CompletableFuture<>();

  /** The attempt in flight, for a cancel of {@link #result}. */
  private volatile CompletableFuture<PublishReply> attempt;
  // Touched by one attempt's end at a time (attempts never overlap).
  /** Attempts made after the first. */
  private int retried;
  /** The first OUTCOME_UNKNOWN: from then on the publish may have been applied. */
  private SwitchboardException unknown;

  RetryingPublish(Client client, PublishRequest.Builder publish, Duration timeout, int retries) {
    this.client = client;
    this.resend = !publish.getIdempotencyKey().isEmpty();
    if (!resend) {
      publish.setIdempotencyKey(newKey());
    }
    this.key = publish.getIdempotencyKey();
    this.frame = ClientFrame.newBuilder().setPublish(publish).build();
    this.timeout = timeout;
    this.retries = retries;
  }

  /**
   * A fresh idempotency key: 128 bits from {@link SecureRandom}, as 32 lowercase hex characters,
   * so two publishes never share one by chance.
   */
  static String newKey() {
    byte[] bytes = new byte[16];
    RANDOM.nextBytes(bytes);
    char[] text = new char[2 * bytes.length];
    for (int i = 0; i < bytes.length; i++) {
      text[2 * i] = HEX[(bytes[i] >> 4) & 0xf];
      text[2 * i + 1] = HEX[bytes[i] & 0xf];
    }
    return new String(text);
  }

  /** Sends the first attempt; returns what the app holds. */
  CompletableFuture<PublishReply> start() {
    result.whenComplete((reply, failure) -> {
      if (result.isCancelled()) {
        client.cancelRetry(this);
        CompletableFuture<PublishReply> sent = attempt;
        if (sent != null) {
          sent.cancel(false);
        }
      }
    });
    send();
    return result;
  }

  /** Sends one attempt (the first, or one after a delay). */
  void send() {
    if (result.isDone()) {
      return;
    }
    CompletableFuture<PublishReply> sent = client.publishAttempt(frame, resend, timeout);
    attempt = sent;
    if (result.isCancelled()) {
      sent.cancel(false); // cancelled while this attempt was being made
      return;
    }
    sent.whenComplete(this::attempted);
  }

  private void attempted(PublishReply reply, Throwable failure) {
    if (failure == null) {
      result.complete(reply);
      return;
    }
    Throwable cause = failure instanceof CompletionException ? failure.getCause() : failure;
    if (result.isDone() || !(cause instanceof SwitchboardException)) {
      result.completeExceptionally(cause); // a cancelled attempt: the call is cancelled already
      return;
    }
    SwitchboardException error = (SwitchboardException) cause;
    ErrorCode code = error instanceof ServerException ? ((ServerException) error).getCode() : null;
    if (code == ErrorCode.ERROR_CODE_OUTCOME_UNKNOWN && unknown == null) {
      unknown = error;
    }
    boolean retryable =
        code == ErrorCode.ERROR_CODE_UNAVAILABLE || code == ErrorCode.ERROR_CODE_OUTCOME_UNKNOWN;
    if (!retryable || retried >= retries) {
      fail(error);
      return;
    }
    Duration delay = BACKOFF.delay(retried++);
    LOG.log(Level.FINE, "switchboard: publish failed ({0}); retry {1} of {2} in {3}",
        new Object[] {error.getMessage(), retried, retries, Durations.describe(delay)});
    if (!client.retryLater(this, delay)) {
      fail(client.closedError()); // closed meanwhile
    }
  }

  /**
   * Ends the call with {@code error}, which carries the key. An UNAVAILABLE after an
   * OUTCOME_UNKNOWN is reported as the latter: the earlier attempt may still have been applied.
   */
  void fail(SwitchboardException error) {
    SwitchboardException reported = error;
    if (unknown != null && error instanceof ServerException
        && ((ServerException) error).getCode() == ErrorCode.ERROR_CODE_UNAVAILABLE) {
      reported = unknown;
      reported.addSuppressed(error);
    }
    reported.setIdempotencyKey(key);
    result.completeExceptionally(reported);
  }
}
