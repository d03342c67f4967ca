package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.example.chat.v1.Attachment;
import com.example.chat.v1.ChatMessage;
import com.example.chat.v1.Format;
import com.example.chat.v1.Mention;
import com.example.chat.v1.TypingEvent;
import com.google.protobuf.ByteString;
import dev.switchboard.v1.Payload;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * Typed application payloads end to end: registered types arrive decoded, unknown ones as bytes
 * plus type name, text and opaque bytes as they were.
 */
class TypedPayloadTest extends ServerTest {
  static ChatMessage richChatMessage() {
    return ChatMessage.newBuilder()
        .setText("Ship it, @bob 🚀 **today**")
        .setFormat(Format.FORMAT_MARKDOWN)
        .addMentions(Mention.newBuilder().setUser("bob").setStart(9).setLength(4))
        .addAttachments(Attachment.newBuilder()
            .setUrl("https://files.example.com/a/diagram.png")
            .setMediaType("image/png")
            .setSizeBytes(48213)
            .setThumbnail(ByteString.copyFrom(new byte[] {(byte) 0x89, 'P', 'N', 'G', 13, 10, 26, 10})))
        .setReplyTo((1L << 62) + 7)
        .setSentAtMs(1_760_000_000_123L)
        .addAllTags(Arrays.asList("release", "ünïcödé"))
        .build();
  }

  @Test
  void typedRoundTripThroughPublishHistoryAndDirect() {
    Client alice = connect("alice", b -> b.types(ChatMessage.getDefaultInstance(),
        TypingEvent.getDefaultInstance()));
    Recorder bobEvents = new Recorder();
    Client bob = connect("bob", b -> b
        .types(ChatMessage.getDefaultInstance(), TypingEvent.getDefaultInstance())
        .listener(bobEvents));
    Await.result(alice.join("chat"));
    Recorder chat = new Recorder();
    join(bob, "chat", chat);
    ChatMessage rich = richChatMessage();
    TypingEvent typing = TypingEvent.newBuilder().setUser("alice").setTyping(true).build();

    Await.result(alice.publish("chat", rich));
    Await.result(alice.publish("chat", typing));
    Await.result(alice.publish("chat", "plain text"));

    Message first = chat.next();
    assertEquals("chat.v1.ChatMessage", first.getTypeName());
    assertEquals(rich, first.getValue());
    assertEquals(rich, first.valueAs(ChatMessage.class));
    assertNull(first.valueAs(TypingEvent.class));
    assertEquals(rich.toByteString(), first.getData());
    assertEquals("alice", first.getSender());

    assertEquals(typing, chat.next().valueAs(TypingEvent.class));

    Message third = chat.next();
    assertEquals("plain text", third.getText());
    assertNull(third.getValue());
    assertEquals("", third.getTypeName());

    List<Object> values = Await.result(bob.history("chat")).getMessages().stream()
        .map(m -> m.getValue() == null ? "none" : m.getValue())
        .collect(Collectors.toList());
    assertEquals(Arrays.asList(rich, typing, "none"), values);

    Await.result(alice.direct("bob", rich));
    DirectMessage dm = Recorder.take(bobEvents.directs, Await.WAIT, "direct message");
    assertEquals("alice", dm.getSender());
    assertEquals(rich, dm.getValue());
  }

  @Test
  void unregisteredAndOpaquePayloadsArriveAsBytes() {
    Client alice = connect("alice", b -> b.types(ChatMessage.getDefaultInstance()));
    Client bob = connect("bob"); // registers nothing
    Await.result(alice.join("chat"));
    Recorder chat = new Recorder();
    join(bob, "chat", chat);
    ChatMessage rich = richChatMessage();
    byte[] unknown = {0x00, 0x01, 0x02, (byte) 0xff};
    byte[] opaque = {(byte) 0xde, (byte) 0xad, (byte) 0xbe, (byte) 0xef};

    Await.result(alice.publish("chat", rich));
    Await.result(alice.publish("chat", Content.payload(Payload.newBuilder()
        .setData(ByteString.copyFrom(unknown)).setTypeName("acme.v1.Unknown").build())));
    Await.result(alice.publish("chat", Content.data(opaque)));
    Await.result(alice.publish("chat", Payload.newBuilder()
        .setText("caption").setData(ByteString.copyFrom(new byte[] {1})).build()));

    List<Message> received = chat.next(4);
    assertEquals(Arrays.asList("chat.v1.ChatMessage", "acme.v1.Unknown", "", ""),
        received.stream().map(Message::getTypeName).collect(Collectors.toList()));
    for (Message m : received) {
      assertNull(m.getValue());
    }
    assertEquals(rich.toByteString(), received.get(0).getData());
    assertArrayEquals(unknown, received.get(1).getData().toByteArray());
    assertArrayEquals(opaque, received.get(2).getData().toByteArray());
    assertEquals("caption", received.get(3).getText());
    assertArrayEquals(new byte[] {1}, received.get(3).getData().toByteArray());
  }

  @Test
  void registeredTypeWithUndecodableBytesIsNotAnError() {
    Client alice = connect("alice", b -> b.types(ChatMessage.getDefaultInstance()));
    Recorder chat = new Recorder();
    join(alice, "chat", chat);
    byte[] garbage = {(byte) 0xff, (byte) 0xff, (byte) 0xff};
    Await.result(alice.publish("chat", Content.payload(Payload.newBuilder()
        .setData(ByteString.copyFrom(garbage)).setTypeName("chat.v1.ChatMessage").build())));
    Await.result(alice.publish("chat", "still flowing"));
    Message broken = chat.next();
    assertNull(broken.getValue());
    assertArrayEquals(garbage, broken.getData().toByteArray());
    assertEquals("still flowing", chat.next().getText());
  }
}
