package dev.switchboard.client;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import dev.switchboard.v1.Payload;
import java.util.Objects;

/**
 * What {@code publish} and {@code direct} send: text, opaque bytes, a typed application message
 * or a ready {@link Payload}. Immutable.
 */
public final class Content {
  /** The wire form. */
  private final Payload payload;

  private Content(Payload payload) {
    this.payload = payload;
  }

  /**
   * Plain UTF-8 text.
   *
   * @param text e.g. a chat line
   * @return content with {@code Payload.text} set
   */
  public static Content text(String text) {
    return new Content(Payload.newBuilder().setText(Objects.requireNonNull(text, "text")).build());
  }

  /**
   * Opaque bytes (no type name).
   *
   * @param data the bytes; copied
   * @return content with {@code Payload.data} set
   */
  public static Content data(byte[] data) {
    return data(ByteString.copyFrom(Objects.requireNonNull(data, "data")));
  }

  /**
   * Opaque bytes (no type name).
   *
   * @param data the bytes
   * @return content with {@code Payload.data} set
   */
  public static Content data(ByteString data) {
    return new Content(Payload.newBuilder().setData(Objects.requireNonNull(data, "data")).build());
  }

  /**
   * A typed application message: its bytes plus its full protobuf name, so receivers that
   * registered the type get it decoded. A {@link Payload} is sent as it is.
   *
   * @param value a generated message, e.g. a {@code ChatMessage}
   * @return typed content
   */
  public static Content of(Message value) {
    Objects.requireNonNull(value, "value");
    if (value instanceof Payload) {
      return new Content((Payload) value);
    }
    return new Content(
        Payload.newBuilder()
            .setData(value.toByteString())
            .setTypeName(value.getDescriptorForType().getFullName())
            .build());
  }

  /**
   * A ready wire payload, sent as it is (text, data and type name may all be set).
   *
   * @param payload the payload
   * @return the content
   */
  public static Content payload(Payload payload) {
    return new Content(Objects.requireNonNull(payload, "payload"));
  }

  /**
   * The wire form.
   *
   * @return the payload that is sent
   */
  public Payload getPayload() {
    return payload;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Content && ((Content) o).payload.equals(payload);
  }

  @Override
  public int hashCode() {
    return payload.hashCode();
  }

  @Override
  public String toString() {
    return "Content(" + payload.toString().trim().replace('\n', ' ') + ")";
  }
}
