package dev.switchboard.client;

import dev.switchboard.v1.JoinReply;
import dev.switchboard.v1.JoinRequest;
import dev.switchboard.v1.MemberJoined;
import dev.switchboard.v1.MemberLeft;
import dev.switchboard.v1.RoomMessage;
import dev.switchboard.v1.StreamPosition;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Flow;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A joined room. Its messages arrive in offset order, each once, across reconnects: to the
 * {@link SubscriptionListener} given to {@link Client#join(String, JoinOptions)}, or to the
 * subscriber of {@link #messages()}.
 *
 * <p>Up to the client's {@code bufferSize} messages wait here for the app. When the app falls
 * that far behind, newer messages are dropped and one {@link Gap} ({@link GapReason#OVERFLOW})
 * marks the spot, in order; the same goes for a reconnect that could not recover what was missed
 * ({@link GapReason#RECOVERY_FAILED}). Gaps, presence events and the room's notifications go to
 * the listener, in order with the messages. The connection never waits for the app.
 *
 * <p>A backend can also subscribe the connection to a room (HTTP API): the client then creates
 * the room's subscription itself, as {@link Client#join(String)} would, and hands it to {@link
 * ClientListener#onSubscribed}.
 *
 * <p>The subscription ends after {@link #leave()}, {@link Client#close()}, when a backend
 * unsubscribed the connection from the room, or when the server ended the client for good; what
 * was buffered before the end is still delivered, then {@link SubscriptionListener#onClosed} (and
 * the publisher's {@code onComplete} or {@code onError}).
 */
public final class Subscription {
  private static final Logger LOG = Logger.getLogger("dev.switchboard.client");

  /** The client, whose lock guards every mutable field below. */
  private final Client client;
  /** The room's name. */
  private final String room;
  /** Whether presence events were asked for. */
  private final boolean presenceEvents;
  /** Receives events (and messages in LISTENER mode), or null. */
  private final SubscriptionListener listener;
  /** Where messages go. */
  private final JoinOptions.Delivery delivery;
  /** Bound of buffered messages (and, separately, of buffered events). */
  private final int capacity;
  /** The publisher {@link #messages()} returns. */
  private final MessagePublisher publisher = new MessagePublisher();

  // Position of the last message handed to the buffer (or skipped by a gap):
  // the dedupe bound and the `since` of the next rejoin.
  private long offset;
  private String epoch = "";
  /** With an explicit `since` on join: whether the server replayed; else null. */
  private Boolean recovered;
  /** False once left or closed. */
  private boolean active = true;
  /**
   * What waits for the app, in arrival order: {@link Message}s, {@link Gap}s, presence events
   * and {@link Notification}s. Bounded: at most {@code capacity} messages plus one gap, and
   * {@code capacity} other events.
   */
  private final ArrayDeque<Object> queue = new ArrayDeque<>();
  /** Messages in {@link #queue}. */
  private int bufferedMessages;
  /** Presence events and notifications in {@link #queue}. */
  private int bufferedEvents;
  /** An overflow gap was queued and no message was buffered since: drop silently. */
  private boolean overflowing;
  /** A drain task is queued or running on the callback executor. */
  private boolean draining;
  /** The subscription ended; {@link #endError} says why. */
  private boolean ended;
  private SwitchboardException endError;
  /** The end was handed to the app. */
  private boolean endDelivered;
  /** The publisher's subscriber (PUBLISHER mode), or null. */
  private Flow.Subscriber<? super Message> subscriber;
  /** Its outstanding demand. */
  private long demand;

  Subscription(Client client, String room, JoinOptions options, int capacity) {
    this.client = client;
    this.room = room;
    this.presenceEvents = options.getPresenceEvents();
    this.listener = options.getListener();
    this.delivery = options.getDelivery();
    this.capacity = capacity;
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
   * Offset and epoch of the last message delivered to the buffer (or skipped). Save it to resume
   * later with {@link JoinOptions.Builder#since}.
   *
   * @return the position
   */
  public StreamPosition getPosition() {
    synchronized (client.lock) {
      return StreamPosition.newBuilder().setOffset(offset).setEpoch(epoch).build();
    }
  }

  /**
   * With {@link JoinOptions.Builder#since}: whether the server replayed what was missed.
   *
   * @return true or false, or null when the join gave no {@code since}
   */
  public Boolean getRecovered() {
    synchronized (client.lock) {
      return recovered;
    }
  }

  /**
   * Whether the subscription is live.
   *
   * @return true until the room is left or the client is closed
   */
  public boolean isActive() {
    synchronized (client.lock) {
      return active;
    }
  }

  /**
   * Whether the room was joined with presence events.
   *
   * @return the join's {@code presenceEvents}
   */
  public boolean getPresenceEvents() {
    return presenceEvents;
  }

  /**
   * The room's messages as a {@link Flow.Publisher}, for subscriptions joined with {@link
   * JoinOptions.Delivery#PUBLISHER} (the default without a listener). One subscriber at a time;
   * messages wait in the buffer (bounded, see the class docs) until it requests them. It
   * completes when the subscription ends, or fails with the error that ended the client. A
   * subscriber that cancels may be followed by another, which gets the messages still buffered.
   *
   * @return the publisher
   */
  public Flow.Publisher<Message> messages() {
    return publisher;
  }

  /**
   * Leaves the room: no more messages are buffered; what is buffered is still delivered, then
   * the end.
   *
   * @return completes when the server confirmed (at once when not connected)
   */
  public CompletableFuture<Void> leave() {
    return client.leaveSubscription(this, null);
  }

  /**
   * Leaves the room, with a timeout.
   *
   * @param timeout overrides the client's command timeout
   * @return completes when the server confirmed (at once when not connected)
   */
  public CompletableFuture<Void> leave(Duration timeout) {
    return client.leaveSubscription(this, Durations.positive(timeout, "timeout"));
  }

  @Override
  public String toString() {
    return "Subscription(" + room + ")";
  }

  // The client calls the methods below with its lock held, from the thread
  // that reads the socket (or a command's thread); they never block.

  boolean activeLocked() {
    return active;
  }

  /** The join that resumes this subscription on a new connection. */
  JoinRequest rejoinRequest() {
    return JoinRequest.newBuilder()
        .setRoom(room)
        .setSince(StreamPosition.newBuilder().setOffset(offset).setEpoch(epoch))
        .setPresenceEvents(presenceEvents)
        .build();
  }

  /** The first join's reply. */
  void joined(JoinReply reply, StreamPosition since) {
    if (since != null) {
      recovered = reply.getRecovered();
    }
    if (since != null && reply.getRecovered()) {
      offset = since.getOffset();
      epoch = since.getEpoch();
      for (RoomMessage m : reply.getMessagesList()) {
        deliver(m);
      }
    } else {
      offset = reply.getPosition().getOffset();
      epoch = reply.getPosition().getEpoch();
    }
  }

  /** A backend subscribed the connection (a {@code Subscribed} push): live from there. */
  void subscribed(StreamPosition position) {
    offset = position.getOffset();
    epoch = position.getEpoch();
  }

  /**
   * A backend subscribed the new connection to this room before its rejoin got there: the rejoin
   * is refused (already joined), and live messages resume after {@code position}. What lies
   * between is marked with a gap, as for a rejoin that could not recover.
   */
  void resubscribed(StreamPosition position) {
    if (!active) {
      return;
    }
    if (position.getEpoch().equals(epoch)
        && Long.compareUnsigned(position.getOffset(), offset) <= 0) {
      return; // nothing was missed
    }
    enqueue(new Gap(room, GapReason.RECOVERY_FAILED, offset, epoch, position));
    offset = position.getOffset();
    epoch = position.getEpoch();
    overflowing = false;
  }

  /** The reply to the join that resumed after a reconnect. */
  void rejoined(JoinReply reply) {
    if (reply.getRecovered()) {
      for (RoomMessage m : reply.getMessagesList()) {
        deliver(m);
      }
      return;
    }
    StreamPosition position = reply.getPosition();
    enqueue(new Gap(room, GapReason.RECOVERY_FAILED, offset, epoch, position));
    offset = position.getOffset();
    epoch = position.getEpoch();
    overflowing = false;
  }

  /** A room message: live, replayed, or both (after a reconnect they may overlap). */
  void deliver(RoomMessage m) {
    if (!active || Long.compareUnsigned(m.getOffset(), offset) <= 0) {
      return; // already delivered
    }
    long previous = offset;
    offset = m.getOffset();
    if (bufferedMessages < capacity) {
      overflowing = false;
      bufferedMessages++;
      enqueue(Message.of(m, client.types));
      return;
    }
    // Full: drop this one, and mark the spot once per run of drops.
    if (!overflowing) {
      overflowing = true;
      enqueue(new Gap(room, GapReason.OVERFLOW, previous, epoch, null));
    }
  }

  /** A presence event or a room notification; when full the oldest such event is dropped. */
  void event(Object event) {
    if (!active || listener == null) {
      return;
    }
    if (bufferedEvents >= capacity) {
      for (Iterator<Object> it = queue.iterator(); it.hasNext(); ) {
        Object queued = it.next();
        if (isEvent(queued)) {
          it.remove();
          bufferedEvents--;
          break;
        }
      }
    }
    bufferedEvents++;
    enqueue(event);
  }

  boolean hasListener() {
    return listener != null;
  }

  /** Ends the subscription; buffered items are still delivered, then the end. */
  void end(SwitchboardException error) {
    if (ended) {
      return;
    }
    active = false;
    ended = true;
    endError = error;
    schedule();
  }

  int bufferedForTesting() {
    return queue.size();
  }

  private static boolean isEvent(Object item) {
    return item instanceof MemberJoined
        || item instanceof MemberLeft
        || item instanceof Notification;
  }

  private void enqueue(Object item) {
    queue.add(item);
    schedule();
  }

  private void schedule() {
    if (!draining) {
      draining = true;
      client.callbacks.execute(this::drain);
    }
  }

  // Delivery, on the callback executor.

  private static final int BATCH = 64;

  private void drain() {
    for (int i = 0; i < BATCH; i++) {
      Runnable next;
      synchronized (client.lock) {
        next = takeNext();
        if (next == null) {
          draining = false;
          return;
        }
      }
      try {
        next.run();
      } catch (RuntimeException | Error e) {
        LOG.log(Level.WARNING, "switchboard: a subscription callback for " + room + " threw", e);
      }
    }
    // More may be waiting: continue in a later turn, after other callbacks.
    client.callbacks.execute(this::drain);
  }

  /** The next delivery, or null when nothing can be delivered now. Lock held. */
  private Runnable takeNext() {
    Object head = queue.peekFirst();
    if (head == null) {
      if (ended && !endDelivered) {
        endDelivered = true;
        return endDelivery();
      }
      return null;
    }
    if (head instanceof Message) {
      Message m = (Message) head;
      if (delivery == JoinOptions.Delivery.LISTENER) {
        queue.pollFirst();
        bufferedMessages--;
        return () -> listener.onMessage(m);
      }
      Flow.Subscriber<? super Message> s = subscriber;
      if (s == null || demand == 0) {
        return null; // waits for demand
      }
      queue.pollFirst();
      bufferedMessages--;
      if (demand != Long.MAX_VALUE) {
        demand--;
      }
      return () -> onNext(s, m);
    }
    queue.pollFirst();
    if (isEvent(head)) {
      bufferedEvents--;
    }
    SubscriptionListener l = listener;
    if (l == null) {
      return () -> {}; // a gap nobody listens for
    }
    if (head instanceof Gap) {
      return () -> l.onGap((Gap) head);
    }
    if (head instanceof MemberJoined) {
      return () -> l.onMemberJoined((MemberJoined) head);
    }
    if (head instanceof MemberLeft) {
      return () -> l.onMemberLeft((MemberLeft) head);
    }
    return () -> l.onNotification((Notification) head);
  }

  private Runnable endDelivery() {
    SwitchboardException error = endError;
    Flow.Subscriber<? super Message> s = subscriber;
    subscriber = null;
    SubscriptionListener l = listener;
    return () -> {
      if (s != null) {
        terminate(s, error);
      }
      if (l != null) {
        l.onClosed(error);
      }
    };
  }

  private void onNext(Flow.Subscriber<? super Message> s, Message m) {
    try {
      s.onNext(m);
    } catch (RuntimeException e) {
      // A subscriber must not throw (Reactive Streams rule 2.13): treat it as cancelled.
      LOG.log(Level.WARNING, "switchboard: a subscriber of " + room + " threw; cancelled", e);
      synchronized (client.lock) {
        if (subscriber == s) {
          subscriber = null;
          demand = 0;
        }
      }
    }
  }

  private static void terminate(Flow.Subscriber<? super Message> s, SwitchboardException error) {
    if (error == null) {
      s.onComplete();
    } else {
      s.onError(error);
    }
  }

  /** {@link Subscription#messages()}: one subscriber at a time, demand-driven. */
  private final class MessagePublisher implements Flow.Publisher<Message> {
    @Override
    public void subscribe(Flow.Subscriber<? super Message> s) {
      if (s == null) {
        throw new NullPointerException("subscriber"); // Reactive Streams rule 1.9
      }
      IllegalStateException refused = null;
      boolean finished = false;
      SwitchboardException error = null;
      synchronized (client.lock) {
        if (delivery != JoinOptions.Delivery.PUBLISHER) {
          refused = new IllegalStateException(
              "the messages of " + room + " go to its listener (Delivery.LISTENER)");
        } else if (subscriber != null) {
          refused = new IllegalStateException(room + " already has a subscriber");
        } else if (endDelivered) {
          finished = true;
          error = endError;
        } else {
          subscriber = s;
          demand = 0;
        }
      }
      FlowSubscription handle = new FlowSubscription(s);
      IllegalStateException failure = refused;
      boolean done = finished;
      SwitchboardException cause = error;
      client.callbacks.execute(() -> {
        s.onSubscribe(handle);
        if (failure != null) {
          s.onError(failure);
        } else if (done) {
          terminate(s, cause);
        }
      });
    }
  }

  /** The {@link Flow.Subscription} handed to a subscriber of {@link #messages()}. */
  private final class FlowSubscription implements Flow.Subscription {
    private final Flow.Subscriber<? super Message> owner;

    FlowSubscription(Flow.Subscriber<? super Message> owner) {
      this.owner = owner;
    }

    @Override
    public void request(long n) {
      synchronized (client.lock) {
        if (subscriber != owner) {
          return;
        }
        if (n <= 0) {
          // Reactive Streams rule 3.9: cancel and signal the error.
          subscriber = null;
          demand = 0;
          client.callbacks.execute(() -> owner.onError(
              new IllegalArgumentException("request(" + n + "): demand must be positive")));
          return;
        }
        long sum = demand + n;
        demand = sum < 0 ? Long.MAX_VALUE : sum;
        schedule();
      }
    }

    @Override
    public void cancel() {
      synchronized (client.lock) {
        if (subscriber == owner) {
          subscriber = null;
          demand = 0;
        }
      }
    }
  }
}
