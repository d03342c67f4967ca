package dev.switchboard.client;

import dev.switchboard.v1.StreamPosition;
import java.time.Duration;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * Options of {@link Client#join(String, JoinOptions)}. Immutable; build with {@link #builder()}.
 */
public final class JoinOptions {
  /** No recovery, no presence events, no listener (read with {@link Subscription#messages()}). */
  public static final JoinOptions DEFAULT = builder().build();

  /** How a subscription hands its messages to the app. */
  public enum Delivery {
    /** Every message goes to {@link SubscriptionListener#onMessage} as it arrives. */
    LISTENER,
    /**
     * Messages wait for a {@link java.util.concurrent.Flow.Subscriber} of {@link
     * Subscription#messages()} to request them; the listener, if any, gets everything else.
     */
    PUBLISHER
  }

  /** Where to resume from, or null. */
  private final StreamPosition since;
  /** Whether to receive presence events. */
  private final boolean presenceEvents;
  /** Receives the subscription's events, or null. */
  private final SubscriptionListener listener;
  /** Where messages go. */
  private final Delivery delivery;
  /** Overrides the client's command timeout, or null. */
  private final Duration timeout;

  private JoinOptions(Builder b) {
    this.since = b.since;
    this.presenceEvents = b.presenceEvents;
    this.listener = b.listener;
    this.delivery =
        b.delivery != null ? b.delivery : b.listener != null ? Delivery.LISTENER : Delivery.PUBLISHER;
    this.timeout = b.timeout;
    if (delivery == Delivery.LISTENER && listener == null) {
      throw new IllegalArgumentException("Delivery.LISTENER needs a listener");
    }
  }

  /**
   * A builder with the defaults.
   *
   * @return a new builder
   */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * The position to resume from.
   *
   * @return the position, or null
   */
  public StreamPosition getSince() {
    return since;
  }

  /**
   * Whether presence events are asked for.
   *
   * @return true to receive member joined and left events
   */
  public boolean getPresenceEvents() {
    return presenceEvents;
  }

  /**
   * The subscription's listener.
   *
   * @return the listener, or null
   */
  public SubscriptionListener getListener() {
    return listener;
  }

  /**
   * Where messages go.
   *
   * @return the delivery mode
   */
  public Delivery getDelivery() {
    return delivery;
  }

  /**
   * The join's timeout.
   *
   * @return the timeout, or null for the client's command timeout
   */
  public Duration getTimeout() {
    return timeout;
  }

  /** Builds {@link JoinOptions}. */
  public static final class Builder {
    private StreamPosition since;
    private boolean presenceEvents;
    private SubscriptionListener listener;
    private Delivery delivery;
    private Duration timeout;

    private Builder() {}

    /**
     * Recovers from a saved {@link Subscription#getPosition()}: the messages after it are
     * delivered first when the server still has them ({@link Subscription#getRecovered()} tells
     * whether it did).
     *
     * @param since the position of the last message the app saw
     * @return this builder
     */
    public Builder since(StreamPosition since) {
      this.since = since;
      return this;
    }

    /**
     * Also receive {@code MemberJoined} / {@code MemberLeft} events for the room.
     *
     * @param presenceEvents true to receive them (default false)
     * @return this builder
     */
    public Builder presenceEvents(boolean presenceEvents) {
      this.presenceEvents = presenceEvents;
      return this;
    }

    /**
     * The subscription's listener. Unless {@link #delivery} says otherwise, it also receives the
     * messages ({@link Delivery#LISTENER}).
     *
     * @param listener the listener
     * @return this builder
     */
    public Builder listener(SubscriptionListener listener) {
      this.listener = listener;
      return this;
    }

    /**
     * Shorthand for a {@link #listener} that only receives messages.
     *
     * @param onMessage called with each message, in order
     * @return this builder
     */
    public Builder onMessage(Consumer<? super Message> onMessage) {
      Objects.requireNonNull(onMessage, "onMessage");
      return listener(new SubscriptionListener() {
        @Override
        public void onMessage(Message message) {
          onMessage.accept(message);
        }
      });
    }

    /**
     * Where messages go. Defaults to {@link Delivery#LISTENER} when a listener is given, {@link
     * Delivery#PUBLISHER} otherwise; set {@code PUBLISHER} explicitly to read messages through
     * {@link Subscription#messages()} while a listener gets gaps and presence events.
     *
     * @param delivery the delivery mode
     * @return this builder
     */
    public Builder delivery(Delivery delivery) {
      this.delivery = delivery;
      return this;
    }

    /**
     * Overrides the client's command timeout for this join.
     *
     * @param timeout positive
     * @return this builder
     */
    public Builder timeout(Duration timeout) {
      this.timeout = Durations.positive(timeout, "timeout");
      return this;
    }

    /**
     * The options.
     *
     * @return immutable options
     * @throws IllegalArgumentException if {@link Delivery#LISTENER} is asked without a listener
     */
    public JoinOptions build() {
      return new JoinOptions(this);
    }
  }
}
