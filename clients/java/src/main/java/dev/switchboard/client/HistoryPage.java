package dev.switchboard.client;

import dev.switchboard.v1.StreamPosition;
import java.util.List;

/** A page of a room's history (see {@link Client#history}). */
public final class HistoryPage {
  /** The messages, in offset order. */
  private final List<Message> messages;
  /** The room's current position. */
  private final StreamPosition position;
  /** Whether more messages exist beyond the page. */
  private final boolean hasMore;

  HistoryPage(List<Message> messages, StreamPosition position, boolean hasMore) {
    this.messages = messages;
    this.position = position;
    this.hasMore = hasMore;
  }

  /**
   * The page.
   *
   * @return the messages in offset order; unmodifiable
   */
  public List<Message> getMessages() {
    return messages;
  }

  /**
   * The room's current position (newest offset and epoch).
   *
   * @return the position
   */
  public StreamPosition getPosition() {
    return position;
  }

  /**
   * Whether more messages exist beyond the page in the paging direction.
   *
   * @return true when another page exists
   */
  public boolean hasMore() {
    return hasMore;
  }

  @Override
  public String toString() {
    return "HistoryPage(" + messages.size() + " messages, hasMore=" + hasMore + ")";
  }
}
