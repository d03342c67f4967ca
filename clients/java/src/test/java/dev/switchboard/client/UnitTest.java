package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.example.chat.v1.ChatMessage;
import com.example.chat.v1.TypingEvent;
import com.google.protobuf.ByteString;
import com.google.protobuf.DescriptorProtos;
import com.google.protobuf.Descriptors;
import com.google.protobuf.DynamicMessage;
import dev.switchboard.v1.Payload;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Backoff, the close-code policy, payload encoding, option validation and the publish's
 * generated keys and retry delays.
 */
class UnitTest {
  // Backoff.

  @Test
  void backoffCeilingDoublesFromHalfASecondToTwenty() {
    List<Duration> ceilings = new ArrayList<>();
    for (int n = 0; n < 9; n++) {
      ceilings.add(Backoff.DEFAULT.ceiling(n));
    }
    assertEquals(Arrays.asList(Duration.ofMillis(500), Duration.ofSeconds(1), Duration.ofSeconds(2),
        Duration.ofSeconds(4), Duration.ofSeconds(8), Duration.ofSeconds(16), Duration.ofSeconds(20),
        Duration.ofSeconds(20), Duration.ofSeconds(20)), ceilings);
  }

  @Test
  void backoffDelayIsFullJitterBelowTheCeiling() {
    Backoff backoff = Backoff.DEFAULT;
    assertEquals(Duration.ZERO, backoff.delay(3, () -> 0.0));
    assertEquals(Duration.ofSeconds(2), backoff.delay(3, () -> 0.5));
    assertEquals(19_980, backoff.delay(10, () -> 0.999).toMillis());
    Random rng = new Random(7);
    for (int attempt = 0; attempt < 30; attempt++) {
      long ceiling = Math.min(20_000_000_000L, 500_000_000L << Math.min(attempt, 20));
      long min = Long.MAX_VALUE;
      long max = 0;
      for (int i = 0; i < 200; i++) {
        long nanos = backoff.delay(attempt, rng::nextDouble).toNanos();
        assertTrue(nanos >= 0 && nanos < ceiling, "delay " + nanos + " for attempt " + attempt);
        min = Math.min(min, nanos);
        max = Math.max(max, nanos);
      }
      // Spread over the whole range, not bunched at the top (no fixed part).
      assertTrue(min < ceiling * 0.1, "min " + min);
      assertTrue(max > ceiling * 0.9, "max " + max);
    }
    Duration random = backoff.delay(4);
    assertTrue(!random.isNegative() && random.compareTo(Duration.ofSeconds(8)) < 0);
  }

  @Test
  void backoffSurvivesHugeAttemptCounts() {
    assertEquals(Duration.ofSeconds(20), Backoff.DEFAULT.ceiling(10_000));
    assertEquals(Duration.ofSeconds(1),
        Backoff.of(Duration.ofMillis(100), Duration.ofSeconds(1)).ceiling(Integer.MAX_VALUE));
  }

  @Test
  void backoffRejectsBadBounds() {
    Duration one = Duration.ofSeconds(1);
    assertThrows(IllegalArgumentException.class, () -> Backoff.of(Duration.ZERO, one));
    assertThrows(IllegalArgumentException.class, () -> Backoff.of(one, Duration.ZERO));
    assertThrows(IllegalArgumentException.class, () -> Backoff.of(Duration.ofSeconds(-1), one));
    assertThrows(IllegalArgumentException.class, () -> Backoff.of(Duration.ofSeconds(2), one));
    assertThrows(IllegalArgumentException.class, () -> Backoff.DEFAULT.ceiling(-1));
    assertThrows(IllegalArgumentException.class, () -> Backoff.DEFAULT.delay(0, () -> 1.0));
  }

  // Publishing safely.

  @Test
  void generatedIdempotencyKeysAre32RandomLowercaseHexCharacters() {
    Set<String> keys = new HashSet<>();
    for (int i = 0; i < 1000; i++) {
      String key = RetryingPublish.newKey();
      assertTrue(PublishTest.GENERATED_KEY.matcher(key).matches(), key);
      keys.add(key);
    }
    assertEquals(1000, keys.size());
  }

  @Test
  void publishRetryDelaysAreFullJitterFrom100MillisecondsDoublingTo2Seconds() {
    List<Duration> ceilings = new ArrayList<>();
    for (int n = 0; n < 7; n++) {
      ceilings.add(RetryingPublish.BACKOFF.ceiling(n));
    }
    assertEquals(Arrays.asList(Duration.ofMillis(100), Duration.ofMillis(200),
        Duration.ofMillis(400), Duration.ofMillis(800), Duration.ofMillis(1600),
        Duration.ofSeconds(2), Duration.ofSeconds(2)), ceilings);
    assertEquals(Duration.ZERO, RetryingPublish.BACKOFF.delay(0, () -> 0.0));
  }

  // Close codes.

  @Test
  void closeCodePolicy() {
    for (Integer code : Arrays.asList(null, 1001, 1002, 1005, 1006, 1011, 1012, 1013, 1014, 4000,
        4001, 4002, 4003, 4499)) {
      assertTrue(CloseCodes.shouldReconnect(code), "reconnect after " + code);
    }
    for (int code : new int[] {1000, 1003, 1004, 1007, 1008, 1009, 1010, 1015, 3000, 4500, 4999,
        5000, 0}) {
      assertFalse(CloseCodes.shouldReconnect(code), "terminal: " + code);
    }
  }

  // Payloads.

  @Test
  void contentBuildsTheWirePayload() {
    assertEquals(Payload.newBuilder().setText("hi").build(), Content.text("hi").getPayload());
    assertEquals(Payload.newBuilder().setData(ByteString.copyFrom(new byte[] {1, 2})).build(),
        Content.data(new byte[] {1, 2}).getPayload());
    ChatMessage chat = ChatMessage.newBuilder().setText("typed").build();
    assertEquals(Payload.newBuilder().setData(chat.toByteString())
        .setTypeName("chat.v1.ChatMessage").build(), Content.of(chat).getPayload());
    Payload raw = Payload.newBuilder().setText("t").setTypeName("x.Y").build();
    assertSame(raw, Content.of(raw).getPayload()); // a Payload is sent as it is
    assertSame(raw, Content.payload(raw).getPayload());
    assertEquals(Content.text("a"), Content.text("a"));
    assertThrows(NullPointerException.class, () -> Content.text(null));
  }

  @Test
  void typeRegistryDecodesRegisteredTypesOnly() {
    TypeRegistry registry = TypeRegistry.of(ChatMessage.newBuilder().setText("any instance").build());
    assertTrue(registry.contains("chat.v1.ChatMessage"));
    assertFalse(registry.contains("chat.v1.TypingEvent"));
    assertSame(ChatMessage.getDefaultInstance(), registry.get("chat.v1.ChatMessage"));
    ChatMessage chat = ChatMessage.newBuilder().setText("hi").build();
    assertEquals(chat, registry.decode(Content.of(chat).getPayload()));
    assertNull(registry.decode(Content.of(TypingEvent.getDefaultInstance()).getPayload()));
    assertNull(registry.decode(Content.text("plain").getPayload()));
    assertNull(registry.decode(Payload.newBuilder().setTypeName("chat.v1.ChatMessage")
        .setData(ByteString.copyFrom(new byte[] {(byte) 0xff})).build()));
    TypeRegistry both = registry.with(TypingEvent.getDefaultInstance());
    assertEquals(Arrays.asList("chat.v1.ChatMessage", "chat.v1.TypingEvent"),
        new ArrayList<>(both.typeNames()));
    assertFalse(registry.contains("chat.v1.TypingEvent")); // immutable
  }

  @Test
  void typeRegistryRefusesTwoClassesWithOneName() throws Exception {
    // A dynamic message of the same full name is another class.
    Descriptors.FileDescriptor file = Descriptors.FileDescriptor.buildFrom(
        DescriptorProtos.FileDescriptorProto.newBuilder()
            .setName("other_chat.proto")
            .setPackage("chat.v1")
            .addMessageType(DescriptorProtos.DescriptorProto.newBuilder().setName("ChatMessage"))
            .build(),
        new Descriptors.FileDescriptor[0]);
    DynamicMessage impostor = DynamicMessage.getDefaultInstance(file.findMessageTypeByName("ChatMessage"));
    assertThrows(IllegalArgumentException.class,
        () -> TypeRegistry.of(ChatMessage.getDefaultInstance(), impostor));
  }

  // Options.

  @Test
  void optionsHaveTheDocumentedDefaults() {
    ClientOptions options = ClientOptions.builder().build();
    assertEquals(Duration.ofSeconds(10), options.getCommandTimeout());
    assertEquals(1024, options.getBufferSize());
    assertEquals(1024, options.getMaxInFlight());
    assertSame(Backoff.DEFAULT, options.getBackoff());
    assertEquals(Duration.ofMillis(500), options.getBackoff().getInitial());
    assertEquals(Duration.ofSeconds(20), options.getBackoff().getMaximum());
    assertEquals(Duration.ofSeconds(20), options.getPingInterval());
    assertEquals(3, options.getPublishRetries());
    assertEquals(0, ClientOptions.builder().publishRetries(0).build().getPublishRetries());
    assertEquals(JoinOptions.Delivery.PUBLISHER, JoinOptions.DEFAULT.getDelivery());
    assertEquals(JoinOptions.Delivery.LISTENER,
        JoinOptions.builder().onMessage(m -> {}).build().getDelivery());
  }

  @Test
  void optionsRejectBadValues() {
    assertThrows(IllegalArgumentException.class, () -> ClientOptions.builder().bufferSize(0));
    assertThrows(IllegalArgumentException.class, () -> ClientOptions.builder().maxInFlight(0));
    assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().publishRetries(-1));
    assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().commandTimeout(Duration.ZERO));
    assertThrows(IllegalArgumentException.class,
        () -> ClientOptions.builder().pingInterval(Duration.ofSeconds(-1)));
    assertThrows(IllegalArgumentException.class, () -> HistoryOptions.builder().limit(-1));
    assertThrows(IllegalArgumentException.class,
        () -> JoinOptions.builder().delivery(JoinOptions.Delivery.LISTENER).build());
  }
}
