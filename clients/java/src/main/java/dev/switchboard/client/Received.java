package dev.switchboard.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import dev.switchboard.v1.Payload;

/**
 * What {@link dev.switchboard.client.Message}, {@link DirectMessage} and {@link Notification}
 * share: a payload and its accessors.
 */
public abstract class Received {
  /** The content as sent. */
  private final Payload payload;
  /** The decoded payload when its type is registered, else null. */
  private final Message value;

  Received(Payload payload, Message value) {
    this.payload = payload;
    this.value = value;
  }

  /**
   * The wire payload.
   *
   * @return the payload as sent
   */
  public final Payload getPayload() {
    return payload;
  }

  /**
   * The payload's text.
   *
   * @return the text, empty when none
   */
  public final String getText() {
    return payload.getText();
  }

  /**
   * The payload's raw bytes (for typed payloads, the encoded value).
   *
   * @return the bytes, empty when none
   */
  public final ByteString getData() {
    return payload.getData();
  }

  /**
   * Full protobuf name of {@link #getData()}.
   *
   * @return e.g. "chat.v1.ChatMessage"; empty for text or opaque bytes
   */
  public final String getTypeName() {
    return payload.getTypeName();
  }

  /**
   * The decoded payload.
   *
   * @return an instance of the registered class, or null when the type is not registered, the
   *     bytes do not decode, or the payload is untyped
   */
  public final Message getValue() {
    return value;
  }

  /**
   * The decoded payload if it is a {@code type}.
   *
   * @param type a generated class, e.g. {@code ChatMessage.class}
   * @param <T> that class
   * @return the value, or null when it is absent or of another type
   */
  public final <T extends Message> T valueAs(Class<T> type) {
    return type.isInstance(value) ? type.cast(value) : null;
  }

  static String describe(Payload payload) {
    if (!payload.getTypeName().isEmpty()) {
      return payload.getTypeName() + "[" + payload.getData().size() + " bytes]";
    }
    if (!payload.getData().isEmpty()) {
      String bytes = "[" + payload.getData().size() + " bytes]";
      return payload.getText().isEmpty() ? bytes : bytes + " \"" + payload.getText() + "\"";
    }
    return "\"" + payload.getText() + "\"";
  }
}
