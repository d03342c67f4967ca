package dev.switchboard.client;

import dev.switchboard.v1.RoomMessage;

/** A message published to a room, as a {@link Subscription} or {@link HistoryPage} delivers it. */
public final class Message extends Received {
  /** The room it was published to. */
  private final String room;
  /** Its offset in the room (unsigned). */
  private final long offset;
  /** Server-assigned message id (unsigned). */
  private final long id;
  /** User id of the publisher. */
  private final String sender;
  /** Server time of the publish. */
  private final long timestampMs;

  private Message(RoomMessage m, TypeRegistry types) {
    super(m.getPayload(), types.decode(m.getPayload()));
    this.room = m.getRoom();
    this.offset = m.getOffset();
    this.id = m.getId();
    this.sender = m.getSender();
    this.timestampMs = m.getTimestampMs();
  }

  static Message of(RoomMessage m, TypeRegistry types) {
    return new Message(m, types);
  }

  /**
   * The room.
   *
   * @return the room's name
   */
  public String getRoom() {
    return room;
  }

  /**
   * The message's offset in the room: one more than the previous message's. An unsigned 64-bit
   * value (use {@link Long#toUnsignedString(long)} to print values above {@link Long#MAX_VALUE}).
   *
   * @return the offset
   */
  public long getOffset() {
    return offset;
  }

  /**
   * The server-assigned message id (unsigned 64-bit).
   *
   * @return the id
   */
  public long getId() {
    return id;
  }

  /**
   * The publisher's user id, stamped by the server.
   *
   * @return the sender
   */
  public String getSender() {
    return sender;
  }

  /**
   * Server time of the publish.
   *
   * @return milliseconds since the Unix epoch
   */
  public long getTimestampMs() {
    return timestampMs;
  }

  /**
   * The message in its wire form.
   *
   * @return the equivalent {@link RoomMessage}
   */
  public RoomMessage toProto() {
    return RoomMessage.newBuilder()
        .setId(id)
        .setRoom(room)
        .setOffset(offset)
        .setSender(sender)
        .setTimestampMs(timestampMs)
        .setPayload(getPayload())
        .build();
  }

  @Override
  public String toString() {
    return "Message(" + room + "#" + Long.toUnsignedString(offset) + " from " + sender + ": "
        + describe(getPayload()) + ")";
  }
}
