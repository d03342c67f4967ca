package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.switchboard.v1.MemberJoined;
import dev.switchboard.v1.MemberLeft;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Records everything a subscription and a client deliver, with the thread each callback ran on,
 * and waits (bounded) for the next of each.
 */
final class Recorder implements SubscriptionListener, ClientListener {
  private static final int BOUND = 100_000;

  final BlockingQueue<Message> messages = new LinkedBlockingQueue<>(BOUND);
  final List<Gap> gaps = new CopyOnWriteArrayList<>();
  final BlockingQueue<Object> presence = new LinkedBlockingQueue<>(BOUND);
  final BlockingQueue<Notification> notifications = new LinkedBlockingQueue<>(BOUND);
  final BlockingQueue<DirectMessage> directs = new LinkedBlockingQueue<>(BOUND);
  /** Subscriptions announced by {@link #onSubscribed}. */
  final BlockingQueue<Subscription> subscribed = new LinkedBlockingQueue<>(BOUND);
  final List<StateChange> states = new CopyOnWriteArrayList<>();
  final BlockingQueue<Object> closes = new LinkedBlockingQueue<>(BOUND);
  /** Names of the threads callbacks ran on. */
  final List<String> threads = new CopyOnWriteArrayList<>();
  /** Everything in arrival order, for checks that span kinds. */
  final List<Object> order = new CopyOnWriteArrayList<>();

  private void saw(Object item) {
    threads.add(Thread.currentThread().getName());
    order.add(item);
  }

  @Override
  public void onMessage(Message message) {
    saw(message);
    messages.add(message);
  }

  @Override
  public void onGap(Gap gap) {
    saw(gap);
    gaps.add(gap);
  }

  @Override
  public void onMemberJoined(MemberJoined event) {
    saw(event);
    presence.add(event);
  }

  @Override
  public void onMemberLeft(MemberLeft event) {
    saw(event);
    presence.add(event);
  }

  @Override
  public void onNotification(Notification notification) {
    saw(notification);
    notifications.add(notification);
  }

  @Override
  public void onClosed(SwitchboardException error) {
    saw("closed");
    closes.add(error == null ? "closed" : error);
  }

  @Override
  public void onStateChange(StateChange change) {
    saw(change);
    states.add(change);
  }

  @Override
  public void onDirectMessage(DirectMessage message) {
    saw(message);
    directs.add(message);
  }

  @Override
  public void onSubscribed(Subscription subscription) {
    saw(subscription);
    subscribed.add(subscription);
  }

  /** The next subscription announced by {@link #onSubscribed}. */
  Subscription nextSubscribed() {
    return take(subscribed, Await.WAIT, "server-side subscription");
  }

  /** Checks that no subscription is announced within {@code wait}. */
  void assertNoSubscribed(Duration wait) {
    try {
      Subscription s = subscribed.poll(wait.toMillis(), TimeUnit.MILLISECONDS);
      assertNull(s, () -> "unexpected server-side subscription " + s);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  Message next() {
    return take(messages, Await.WAIT, "message");
  }

  List<Message> next(int n) {
    List<Message> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      out.add(next());
    }
    return out;
  }

  void assertNoMessage(Duration wait) {
    try {
      Message m = messages.poll(wait.toMillis(), TimeUnit.MILLISECONDS);
      assertNull(m, () -> "unexpected message " + m);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  static <T> T take(BlockingQueue<T> queue, Duration wait, String what) {
    try {
      T item = queue.poll(wait.toMillis(), TimeUnit.MILLISECONDS);
      if (item == null) {
        fail("no " + what + " within " + wait);
      }
      return item;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  List<ConnectionState> stateList() {
    List<ConnectionState> out = new ArrayList<>();
    for (StateChange c : states) {
      out.add(c.getState());
    }
    return out;
  }

  /** Waits for a change to {@code state} recorded at index {@code after} or later. */
  StateChange waitFor(ConnectionState state, int after) {
    long deadline = System.nanoTime() + Await.WAIT.toNanos();
    while (System.nanoTime() < deadline) {
      for (int i = after; i < states.size(); i++) {
        if (states.get(i).getState() == state) {
          return states.get(i);
        }
      }
      Await.sleep(2);
    }
    return fail("no " + state + " within " + Await.WAIT + "; saw " + states);
  }

  StateChange waitFor(ConnectionState state) {
    return waitFor(state, 0);
  }

  void assertCallbacksOffTheReader() {
    for (String name : threads) {
      assertTrue(!name.contains("-io-") && !name.startsWith("OkHttp"),
          () -> "a callback ran on " + name);
    }
  }
}
