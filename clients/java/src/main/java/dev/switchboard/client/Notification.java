package dev.switchboard.client;

/**
 * A notification a backend sent (through the HTTP API) to this user or to a joined room (see
 * {@link ClientListener}). Notifications are not stored in history.
 */
public final class Notification extends Received {
  /** Server-assigned notification id (unsigned). */
  private final long id;
  /** The room it was sent to, or empty when sent to the user. */
  private final String room;
  /** Server time. */
  private final long timestampMs;

  private Notification(dev.switchboard.v1.Notification n, TypeRegistry types) {
    super(n.getPayload(), types.decode(n.getPayload()));
    this.id = n.getId();
    this.room = n.getRoom();
    this.timestampMs = n.getTimestampMs();
  }

  static Notification of(dev.switchboard.v1.Notification n, TypeRegistry types) {
    return new Notification(n, types);
  }

  /**
   * The server-assigned notification id (unsigned 64-bit).
   *
   * @return the id
   */
  public long getId() {
    return id;
  }

  /**
   * The room it was sent to.
   *
   * @return the room, or empty when it was sent to this user
   */
  public String getRoom() {
    return room;
  }

  /**
   * Server time.
   *
   * @return milliseconds since the Unix epoch
   */
  public long getTimestampMs() {
    return timestampMs;
  }

  /**
   * The notification in its wire form.
   *
   * @return the equivalent push
   */
  public dev.switchboard.v1.Notification toProto() {
    return dev.switchboard.v1.Notification.newBuilder()
        .setId(id)
        .setRoom(room)
        .setTimestampMs(timestampMs)
        .setPayload(getPayload())
        .build();
  }

  @Override
  public String toString() {
    return "Notification(" + (room.isEmpty() ? "to user" : room) + ": " + describe(getPayload())
        + ")";
  }
}
