package dev.switchboard.client;

/** A message sent directly to this connection's user (see {@link ClientListener}). */
public final class DirectMessage extends Received {
  /** Server-assigned message id (unsigned). */
  private final long id;
  /** User id of the sender. */
  private final String sender;
  /** Server time of the send. */
  private final long timestampMs;

  private DirectMessage(dev.switchboard.v1.DirectMessage m, TypeRegistry types) {
    super(m.getPayload(), types.decode(m.getPayload()));
    this.id = m.getId();
    this.sender = m.getSender();
    this.timestampMs = m.getTimestampMs();
  }

  static DirectMessage of(dev.switchboard.v1.DirectMessage m, TypeRegistry types) {
    return new DirectMessage(m, types);
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
   * The sender's user id, stamped by the server.
   *
   * @return the sender
   */
  public String getSender() {
    return sender;
  }

  /**
   * Server time of the send.
   *
   * @return milliseconds since the Unix epoch
   */
  public long getTimestampMs() {
    return timestampMs;
  }

  /**
   * The message in its wire form.
   *
   * @return the equivalent push
   */
  public dev.switchboard.v1.DirectMessage toProto() {
    return dev.switchboard.v1.DirectMessage.newBuilder()
        .setId(id)
        .setSender(sender)
        .setTimestampMs(timestampMs)
        .setPayload(getPayload())
        .build();
  }

  @Override
  public String toString() {
    return "DirectMessage(from " + sender + ": " + describe(getPayload()) + ")";
  }
}
