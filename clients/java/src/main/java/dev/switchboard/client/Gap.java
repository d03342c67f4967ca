package dev.switchboard.client;

import dev.switchboard.v1.StreamPosition;

/**
 * Messages of a room were skipped; read them with {@link Client#history}. Delivered in order
 * with the messages: after those before the gap, before those after it.
 *
 * <p>For {@link GapReason#OVERFLOW}, {@code history(room, HistoryOptions.after(gap.getLastOffset()))}
 * returns the dropped messages (up to the next one delivered). For {@link
 * GapReason#RECOVERY_FAILED}, offsets of the old epoch mean nothing any more: reload the room,
 * e.g. with {@code history(room)}.
 */
public final class Gap {
  /** The room. */
  private final String room;
  /** Why messages were skipped. */
  private final GapReason reason;
  /** Offset of the last message delivered before the gap. */
  private final long lastOffset;
  /** Epoch of {@link #lastOffset}. */
  private final String epoch;
  /** For RECOVERY_FAILED: the room's position when it was rejoined. */
  private final StreamPosition position;

  Gap(String room, GapReason reason, long lastOffset, String epoch, StreamPosition position) {
    this.room = room;
    this.reason = reason;
    this.lastOffset = lastOffset;
    this.epoch = epoch;
    this.position = position;
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
   * Why messages were skipped.
   *
   * @return the reason
   */
  public GapReason getReason() {
    return reason;
  }

  /**
   * Offset of the last message delivered before the gap (unsigned).
   *
   * @return the offset, 0 when none was
   */
  public long getLastOffset() {
    return lastOffset;
  }

  /**
   * Epoch of {@link #getLastOffset()}.
   *
   * @return the epoch
   */
  public String getEpoch() {
    return epoch;
  }

  /**
   * For {@link GapReason#RECOVERY_FAILED}: the room's position when it was rejoined; live
   * messages continue after it.
   *
   * @return the position, or null for {@link GapReason#OVERFLOW}
   */
  public StreamPosition getPosition() {
    return position;
  }

  @Override
  public String toString() {
    return "Gap(" + room + ", " + reason + ", lastOffset=" + Long.toUnsignedString(lastOffset)
        + ", epoch=" + epoch + (position == null ? "" : ", position="
        + Long.toUnsignedString(position.getOffset()) + "@" + position.getEpoch()) + ")";
  }
}
