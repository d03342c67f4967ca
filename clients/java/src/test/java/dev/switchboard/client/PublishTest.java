package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.PublishReply;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Publishing safely against the in-memory broker: a key for every publish, and the key on every
 * failure. The retries after broker failures are in {@link RedisPublishTest}.
 */
class PublishTest extends ServerTest {
  /** A key the client generated. */
  static final Pattern GENERATED_KEY = Pattern.compile("[0-9a-f]{32}");

  @Test
  void twoPublishesWithoutAKeyAreTwoMessages() {
    Client alice = connect("alice");
    Client bob = connect("bob");
    Await.result(alice.join("room"));
    Recorder room = new Recorder();
    join(bob, "room", room);

    // Same room, same content, no key: each call has a key of its own.
    PublishReply first = Await.result(alice.publish("room", "same"));
    PublishReply second = Await.result(alice.publish("room", Content.text("same"), (String) null));
    assertEquals(Arrays.asList(1L, 2L, false, false), Arrays.asList(
        first.getOffset(), second.getOffset(), first.getDuplicate(), second.getDuplicate()));
    assertEquals(Arrays.asList("same", "same"), ClientTest.texts(room.next(2)));
    room.assertNoMessage(Duration.ofMillis(300));
  }

  @Test
  void everyPublishFailureCarriesItsKey() {
    Client alice = connect("alice");
    // Not joined: ERROR_CODE_NOT_JOINED, terminal, not retried.
    ServerException generated =
        Await.failure(alice.publish("room", "too early"), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_NOT_JOINED, generated.getCode());
    String key = generated.getIdempotencyKey();
    assertTrue(GENERATED_KEY.matcher(key).matches(), key);
    ServerException another =
        Await.failure(alice.publish("room", "too early"), ServerException.class);
    assertNotEquals(key, another.getIdempotencyKey());
    ServerException own = Await.failure(
        alice.publish("room", Content.text("too early"), "order-1"), ServerException.class);
    assertEquals("order-1", own.getIdempotencyKey());
    // Other commands' errors carry none.
    assertNull(Await.failure(alice.leave("room"), ServerException.class).getIdempotencyKey());

    // The failed publish had no effect: its key publishes a new message.
    Await.result(alice.join("room"));
    PublishReply ack = Await.result(alice.publish("room", Content.text("now"), key));
    assertEquals(1, ack.getOffset());
    assertFalse(ack.getDuplicate());
    assertTrue(Await.result(alice.publish("room", Content.text("now"), key)).getDuplicate());

    alice.close();
    ConnectionClosedException closed =
        Await.failure(alice.publish("room", "after close"), ConnectionClosedException.class);
    assertTrue(GENERATED_KEY.matcher(closed.getIdempotencyKey()).matches());
  }

  @Test
  void inFlightPublishWithoutAKeyFailsAsLostWithItsKey() throws Exception {
    Client alice = connect("alice", b -> b.backoff(ReconnectTest.FAST));
    Client bob = connect("bob");
    Await.result(alice.join("orders"));
    Recorder orders = new Recorder();
    join(bob, "orders", orders);
    CompletableFuture<PublishReply> publish;
    server.pause();
    try {
      publish = alice.publish("orders", "paid");
      Await.sleep(200); // written to the socket, no reply possible
      alice.dropConnectionForTesting();
    } finally {
      server.resume();
    }
    // A generated key is not resent after the reconnect: the app decides, with the key.
    ConnectionLostException lost = Await.failure(publish, ConnectionLostException.class);
    assertEquals("publish", lost.getCommand());
    String key = lost.getIdempotencyKey();
    assertTrue(GENERATED_KEY.matcher(key).matches(), key);

    // Whether or not the server read the first one, the message is published once.
    PublishReply again = Await.result(alice.publish("orders", Content.text("paid"), key));
    assertEquals(1, again.getOffset());
    Message paid = orders.next();
    assertEquals(Arrays.asList(1L, "paid"), Arrays.asList(paid.getOffset(), paid.getText()));
    orders.assertNoMessage(Duration.ofMillis(500));
  }
}
