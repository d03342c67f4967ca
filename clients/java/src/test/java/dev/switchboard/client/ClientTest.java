package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.switchboard.v1.DirectReply;
import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.Member;
import dev.switchboard.v1.MemberJoined;
import dev.switchboard.v1.MemberLeft;
import dev.switchboard.v1.PublishReply;
import dev.switchboard.v1.ServerFrame;
import dev.switchboard.v1.StreamPosition;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Flow;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The client API against a live server: commands, typed errors, events, bounds, threads. */
class ClientTest extends ServerTest {
  @Test
  void connectReportsStatesAndIdentity() {
    Recorder recorder = new Recorder();
    Client alice = connect("alice", b -> b.listener(recorder));
    assertEquals(ConnectionState.CONNECTED, alice.getState());
    assertEquals("alice", alice.getUser());
    assertFalse(alice.getClientId().isEmpty());
    alice.close();
    StateChange last = Await.result(alice.closed());
    assertEquals(ConnectionState.CLOSED, last.getState());
    assertEquals(Integer.valueOf(1000), last.getCode());
    assertNull(last.getError());
    Await.until("the CLOSED change is delivered", () -> recorder.states.size() == 3);
    assertEquals(
        Arrays.asList(ConnectionState.CONNECTING, ConnectionState.CONNECTED, ConnectionState.CLOSED),
        recorder.stateList());
  }

  @Test
  void unreachableServerFailsFast() {
    // Port 9 on loopback: nothing listens there.
    ClientOptions options = ClientOptions.builder().name("alice")
        .commandTimeout(Duration.ofSeconds(2)).build();
    ConnectionClosedException failed =
        Await.failure(Client.connect("ws://127.0.0.1:9/ws", options), ConnectionClosedException.class);
    assertNull(failed.getCode());
  }

  @Test
  void badUrlIsRejectedAtOnce() {
    ClientOptions options = ClientOptions.builder().name("alice").build();
    assertThrows(IllegalArgumentException.class, () -> Client.connect("not a url", options));
  }

  @Test
  void publishAckHistoryPagingAndPresence() {
    Client alice = connect("alice");
    Client bob = connect("bob");
    Recorder recorder = new Recorder();
    join(alice, "room", recorder);
    for (int i = 1; i <= 5; i++) {
      PublishReply ack = Await.result(alice.publish("room", "m" + i));
      assertEquals(i, ack.getOffset());
      assertFalse(ack.getDuplicate());
      assertFalse(ack.getEpoch().isEmpty());
      assertNotEquals(0, ack.getId());
      assertNotEquals(0, ack.getTimestampMs());
    }
    assertEquals(Arrays.asList(1L, 2L, 3L, 4L, 5L), offsets(recorder.next(5)));

    HistoryPage newest = Await.result(bob.history("room", HistoryOptions.builder().limit(2).build()));
    assertEquals(Arrays.asList(4L, 5L), offsets(newest.getMessages()));
    assertTrue(newest.hasMore());
    assertEquals(5, newest.getPosition().getOffset());
    HistoryPage older =
        Await.result(bob.history("room", HistoryOptions.builder().limit(2).before(4).build()));
    assertEquals(Arrays.asList("m2", "m3"), texts(older.getMessages()));
    HistoryPage after =
        Await.result(bob.history("room", HistoryOptions.builder().limit(10).after(3).build()));
    assertEquals(Arrays.asList(4L, 5L), offsets(after.getMessages()));
    assertFalse(after.hasMore());

    List<Member> members = Await.result(bob.presence("room"));
    assertEquals(1, members.size());
    assertEquals("alice", members.get(0).getUser());
    assertEquals(alice.getClientId(), members.get(0).getClient());
    assertTrue(Await.result(alice.ping()).getTimestampMs() > 0);
  }

  @Test
  void serverErrorsAreTyped() {
    Client alice = connect("alice");
    ServerException notJoined = Await.failure(alice.publish("room", "hi"), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_NOT_JOINED, notJoined.getCode());
    assertEquals("ERROR_CODE_NOT_JOINED", notJoined.getCodeName());
    assertFalse(notJoined.isTemporary());
    assertEquals("publish", notJoined.getCommand());
    assertTrue(notJoined.getMessage().contains("ERROR_CODE_NOT_JOINED"));

    Recorder first = new Recorder();
    join(alice, "room", first);
    ServerException twice = Await.failure(alice.join("room"), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_ALREADY_JOINED, twice.getCode());
    Await.result(alice.publish("room", "still subscribed")); // the first subscription is intact
    assertEquals("still subscribed", first.next().getText());

    ServerException invalid = Await.failure(alice.history(""), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_INVALID_ROOM, invalid.getCode());
  }

  @Test
  void leaveEndsTheSubscription() {
    Client alice = connect("alice");
    Client bob = connect("bob");
    Await.result(bob.join("room", JoinOptions.builder().onMessage(m -> {}).build()));
    Recorder recorder = new Recorder();
    Subscription sub = join(alice, "room", recorder);
    Await.result(bob.publish("room", "one"));
    assertEquals("one", recorder.next().getText());
    Await.result(sub.leave());
    assertFalse(sub.isActive());
    assertEquals("closed", Recorder.take(recorder.closes, Await.WAIT, "end"));
    Await.result(bob.publish("room", "two"));
    recorder.assertNoMessage(Duration.ofMillis(200));
    assertEquals(Arrays.asList("bob"), users(Await.result(bob.presence("room"))));
    ServerException notJoined = Await.failure(alice.leave("room"), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_NOT_JOINED, notJoined.getCode());
    // Joining again works, with a fresh subscription.
    Recorder again = new Recorder();
    join(alice, "room", again);
    Await.result(bob.publish("room", "three"));
    assertEquals("three", again.next().getText());
  }

  @Test
  void presenceEventsAndRoomNotificationsReachTheListener() {
    Client alice = connect("alice");
    Recorder recorder = new Recorder();
    Subscription sub = Await.result(alice.join("lobby",
        JoinOptions.builder().presenceEvents(true).listener(recorder).build()));
    assertTrue(sub.getPresenceEvents());
    Client bob = connect("bob");
    Await.result(bob.join("lobby"));
    MemberJoined joined = (MemberJoined) Recorder.take(recorder.presence, Await.WAIT, "joined");
    assertEquals("lobby", joined.getRoom());
    assertEquals("bob", joined.getMember().getUser());
    bob.close();
    MemberLeft left = (MemberLeft) Recorder.take(recorder.presence, Await.WAIT, "left");
    assertEquals(joined.getMember().getClient(), left.getMember().getClient());
    recorder.assertCallbacksOffTheReader();
  }

  @Test
  void joinSinceReplaysWhatWasMissed() {
    Client alice = connect("alice");
    Recorder first = new Recorder();
    Subscription sub = join(alice, "room", first);
    Await.result(alice.publish("room", "m1"));
    assertEquals(1, first.next().getOffset());
    StreamPosition saved = sub.getPosition();
    assertEquals(1, saved.getOffset());
    Await.result(sub.leave());
    Client carol = connect("carol");
    Await.result(carol.join("room"));
    Await.result(carol.publish("room", "m2"));
    Await.result(carol.publish("room", "m3"));

    Recorder resumed = new Recorder();
    Subscription again = Await.result(
        alice.join("room", JoinOptions.builder().since(saved).listener(resumed).build()));
    assertEquals(Boolean.TRUE, again.getRecovered());
    Await.result(carol.publish("room", "m4"));
    assertEquals(Arrays.asList("m2", "m3", "m4"), texts(resumed.next(3)));
    Await.result(again.leave());

    StreamPosition foreign = StreamPosition.newBuilder().setOffset(1).setEpoch("not-this-one").build();
    Subscription stale = Await.result(
        alice.join("room", JoinOptions.builder().since(foreign).onMessage(m -> {}).build()));
    assertEquals(Boolean.FALSE, stale.getRecovered());
    assertEquals(4, stale.getPosition().getOffset());
    Subscription plain = Await.result(connect("dave").join("room"));
    assertNull(plain.getRecovered());
  }

  @Test
  void slowReaderGetsAnOverflowGapAndCanFillIt() {
    Client alice = connect("alice", b -> b.bufferSize(3));
    Recorder gaps = new Recorder();
    // Read through the publisher, and request nothing while publishing.
    Subscription sub = Await.result(alice.join("room",
        JoinOptions.builder().listener(gaps).delivery(JoinOptions.Delivery.PUBLISHER).build()));
    for (int i = 1; i <= 8; i++) {
      Await.result(alice.publish("room", "m" + i)); // acks still flow
    }
    Await.until("the buffer holds 3 messages and a gap", () -> bufferedOf(alice, sub) == 4);
    Reader reader = new Reader(0);
    sub.messages().subscribe(reader);
    reader.request(3);
    assertEquals(Arrays.asList(1L, 2L, 3L), offsets(reader.take(3)));
    Await.result(alice.publish("room", "m9"));
    reader.request(1);
    Message ninth = reader.take(1).get(0);
    assertEquals(9, ninth.getOffset());
    assertEquals(1, gaps.gaps.size());
    Gap gap = gaps.gaps.get(0);
    assertEquals(GapReason.OVERFLOW, gap.getReason());
    assertEquals(3, gap.getLastOffset());
    assertEquals("room", gap.getRoom());
    assertNull(gap.getPosition());
    // The gap came between message 3 and message 9.
    int gapAt = gaps.order.indexOf(gap);
    assertTrue(gapAt >= 0);
    HistoryPage missed = Await.result(alice.history("room",
        HistoryOptions.builder().after(gap.getLastOffset()).limit((int) ninth.getOffset() - 4).build()));
    assertEquals(Arrays.asList("m4", "m5", "m6", "m7", "m8"), texts(missed.getMessages()));
  }

  @Test
  void listenerThatBlocksOverflowsWithoutStallingTheConnection() {
    Client alice = connect("alice", b -> b.bufferSize(4));
    CompletableFuture<Void> blocked = new CompletableFuture<>();
    CompletableFuture<Void> release = new CompletableFuture<>();
    BlockingQueue<Object> seen = new ArrayBlockingQueue<>(100);
    Subscription sub = Await.result(alice.join("room", JoinOptions.builder()
        .listener(new SubscriptionListener() {
      @Override
      public void onMessage(Message m) {
        seen.add(m);
        if (m.getOffset() == 1) {
          blocked.complete(null);
          release.join(); // blocks the callback thread
        }
      }

      @Override
      public void onGap(Gap g) {
        seen.add(g);
      }
    }).build()));
    Client bob = connect("bob");
    Await.result(bob.join("room", JoinOptions.builder().onMessage(m -> {}).build()));
    Await.result(bob.publish("room", "m1"));
    Await.result(blocked);
    for (int i = 2; i <= 20; i++) {
      Await.result(bob.publish("room", "m" + i)); // bob is never slowed down
    }
    // Alice's socket reader kept going: it saw all 20 (the position counts the
    // dropped ones too), and 4 messages and the gap wait in the buffer.
    Await.until("alice read all 20", () -> sub.getPosition().getOffset() == 20);
    assertEquals(5, bufferedOf(alice, sub));
    release.complete(null);
    List<Object> items = new ArrayList<>();
    Await.until("alice's buffer drained", () -> {
      seen.drainTo(items);
      return items.size() >= 6;
    });
    // Message 1 (being delivered), the 4 buffered after it, then the gap.
    assertEquals(Arrays.asList(1L, 2L, 3L, 4L, 5L),
        items.subList(0, 5).stream().map(o -> ((Message) o).getOffset()).collect(Collectors.toList()));
    Gap gap = (Gap) items.get(5);
    assertEquals(GapReason.OVERFLOW, gap.getReason());
    assertEquals(5, gap.getLastOffset());
    Await.sleep(100);
    seen.drainTo(items);
    assertEquals(6, items.size(), "nothing after the gap until the next message");
  }

  @Test
  void publisherRespectsDemandAndCompletesOnLeave() {
    Client alice = connect("alice");
    Subscription sub = Await.result(alice.join("room"));
    for (int i = 1; i <= 5; i++) {
      Await.result(alice.publish("room", "m" + i));
    }
    Reader reader = new Reader(0);
    sub.messages().subscribe(reader);
    Await.until("subscribed", () -> reader.subscription.get() != null);
    Await.sleep(100);
    assertTrue(reader.items.isEmpty(), "nothing arrives without demand");
    reader.request(2);
    assertEquals(Arrays.asList(1L, 2L), offsets(reader.take(2)));
    Await.sleep(100);
    assertTrue(reader.items.isEmpty(), "no more than requested");
    Reader second = new Reader(0);
    sub.messages().subscribe(second);
    assertTrue(Recorder.take(second.terminal, Await.WAIT, "refusal") instanceof IllegalStateException);
    reader.request(Long.MAX_VALUE);
    assertEquals(Arrays.asList(3L, 4L, 5L), offsets(reader.take(3)));
    Await.result(sub.leave());
    assertEquals("complete", Recorder.take(reader.terminal, Await.WAIT, "completion"));
  }

  @Test
  void listenerModeRefusesAPublisherSubscriber() {
    Client alice = connect("alice");
    Subscription sub = join(alice, "room", new Recorder());
    Reader reader = new Reader(1);
    sub.messages().subscribe(reader);
    assertTrue(Recorder.take(reader.terminal, Await.WAIT, "refusal") instanceof IllegalStateException);
  }

  @Test
  void directMessagesAndUnknownPushes() {
    Client alice = connect("alice");
    Recorder bobEvents = new Recorder();
    Recorder phoneEvents = new Recorder();
    Client bob = connect("bob", b -> b.listener(bobEvents));
    connect("bob", b -> b.listener(phoneEvents));
    DirectReply reply = Await.result(alice.direct("bob", "psst"));
    assertNotEquals(0, reply.getId());
    for (Recorder r : Arrays.asList(bobEvents, phoneEvents)) {
      DirectMessage dm = Recorder.take(r.directs, Await.WAIT, "direct message");
      assertEquals("alice", dm.getSender());
      assertEquals("psst", dm.getText());
      assertEquals(reply.getId(), dm.getId());
    }
    Await.result(alice.direct("nobody-online", "void")); // succeeds, delivers nothing

    // A push kind from a newer protocol (an unknown field number) is ignored.
    ServerFrame unknown = ServerFrame.newBuilder()
        .setUnknownFields(com.google.protobuf.UnknownFieldSet.newBuilder()
            .addField(111, com.google.protobuf.UnknownFieldSet.Field.newBuilder()
                .addLengthDelimited(ByteString.copyFromUtf8("hi")).build())
            .build())
        .build();
    bob.receiveForTesting(unknown);
    assertEquals(ConnectionState.CONNECTED, bob.getState());
    Await.result(bob.presence("room"));
    bobEvents.assertCallbacksOffTheReader();
  }

  @Test
  void notificationsGoToTheRoomListenerOrTheClient() {
    // The server has no HTTP API to send notifications yet: inject the pushes
    // through the dispatcher, as the socket reader would hand them over.
    Recorder client = new Recorder();
    Recorder room = new Recorder();
    Client alice = connect("alice", b -> b.listener(client));
    join(alice, "with-listener", room);
    Await.result(alice.join("without-listener"));
    alice.receiveForTesting(notification(1, "with-listener", "to the room"));
    alice.receiveForTesting(notification(2, "", "to the user"));
    alice.receiveForTesting(notification(3, "without-listener", "to a room read by a publisher"));
    Notification toRoom = Recorder.take(room.notifications, Await.WAIT, "room notification");
    assertEquals("with-listener", toRoom.getRoom());
    assertEquals("to the room", toRoom.getText());
    assertEquals(1, toRoom.getId());
    Notification toUser = Recorder.take(client.notifications, Await.WAIT, "user notification");
    assertEquals("", toUser.getRoom());
    assertEquals("to the user", toUser.getText());
    Notification fallback = Recorder.take(client.notifications, Await.WAIT, "fallback");
    assertEquals("without-listener", fallback.getRoom());
    assertTrue(room.notifications.isEmpty() && client.notifications.isEmpty());
  }

  private static ServerFrame notification(long id, String room, String text) {
    return ServerFrame.newBuilder()
        .setNotification(dev.switchboard.v1.Notification.newBuilder()
            .setId(id)
            .setRoom(room)
            .setTimestampMs(1)
            .setPayload(Content.text(text).getPayload()))
        .build();
  }

  @Test
  void callbacksRunOnTheAppExecutorInOrder() throws Exception {
    ExecutorService app = Executors.newFixedThreadPool(4, r -> {
      Thread t = new Thread(r, "app-pool");
      t.setDaemon(true);
      return t;
    });
    try {
      Recorder recorder = new Recorder();
      Client alice = connect("alice", b -> b.callbackExecutor(app).listener(recorder));
      join(alice, "room", recorder);
      AtomicReference<String> completedOn = new AtomicReference<>();
      for (int i = 1; i <= 50; i++) {
        alice.publish("room", "m" + i).thenRun(() -> completedOn.set(Thread.currentThread().getName()));
      }
      List<Message> got = recorder.next(50);
      for (int i = 0; i < 50; i++) {
        assertEquals(i + 1, got.get(i).getOffset());
      }
      Await.until("acks are in", () -> completedOn.get() != null);
      assertEquals("app-pool", completedOn.get());
      alice.close(); // before the app's executor goes away
      Await.until("CLOSED is delivered",
          () -> recorder.stateList().contains(ConnectionState.CLOSED));
      for (String name : recorder.threads) {
        assertEquals("app-pool", name);
      }
    } finally {
      app.shutdownNow();
    }
  }

  @Test
  void closeIsIdempotentAndLeavesNoThreads() {
    Recorder recorder = new Recorder();
    Client alice = connect("alice", b -> b.listener(recorder));
    Subscription sub = join(alice, "room", recorder);
    Await.result(alice.publish("room", "last words"));
    assertEquals("last words", recorder.next().getText());
    assertTrue(alice.threadsForTesting().stream().anyMatch(Thread::isAlive));
    alice.close();
    alice.close(); // idempotent
    Await.result(alice.closeAsync());
    assertFalse(sub.isActive());
    assertEquals("closed", Recorder.take(recorder.closes, Await.WAIT, "end"));
    ConnectionClosedException closed =
        Await.failure(alice.publish("room", "after close"), ConnectionClosedException.class);
    assertEquals(Integer.valueOf(1000), closed.getCode());
    Await.until("every client thread ended",
        () -> alice.threadsForTesting().stream().noneMatch(Thread::isAlive));
    assertFalse(recorder.stateList().contains(ConnectionState.RECONNECTING));
  }

  @Test
  void closeFromInsideACallbackDoesNotDeadlock() {
    Client alice = connect("alice");
    CompletableFuture<Void> closedInside = new CompletableFuture<>();
    Await.result(alice.join("room", JoinOptions.builder().onMessage(m -> {
      alice.close();
      closedInside.complete(null);
    }).build()));
    // The message may arrive before the ack, and closing fails what is still in flight.
    alice.publish("room", "bye");
    Await.result(closedInside);
    assertSame(ConnectionState.CLOSED, alice.getState());
    Await.until("every client thread ended",
        () -> alice.threadsForTesting().stream().noneMatch(Thread::isAlive));
  }

  @Test
  void commandsBeyondTheInFlightLimitWaitForASlot() throws Exception {
    Client alice = connect("alice", b -> b.maxInFlight(2));
    Await.result(alice.join("room"));
    List<CompletableFuture<PublishReply>> acks = new ArrayList<>();
    server.pause(); // nothing is answered: the slots stay taken
    try {
      for (int i = 0; i < 4; i++) {
        acks.add(alice.publish("room", "m" + i));
      }
      // 2 in flight + 2 waiting for a slot: the next is refused at once.
      SwitchboardException refused =
          Await.failure(alice.publish("room", "one too many"), SwitchboardException.class);
      assertTrue(refused.getMessage().contains("refused"), refused.getMessage());
    } finally {
      server.resume();
    }
    List<Long> offsets = new ArrayList<>();
    for (CompletableFuture<PublishReply> ack : acks) {
      offsets.add(Await.result(ack).getOffset());
    }
    assertEquals(Arrays.asList(1L, 2L, 3L, 4L), offsets);
  }

  @Test
  void cancelledCommandReleasesItsSlot() throws Exception {
    Client alice = connect("alice", b -> b.maxInFlight(1));
    Await.result(alice.join("room"));
    server.pause(); // the first publish holds the only slot until the server answers
    CompletableFuture<PublishReply> first;
    try {
      first = alice.publish("room", "first");
      CompletableFuture<PublishReply> second = alice.publish("room", "second");
      assertTrue(second.cancel(false));
    } finally {
      server.resume();
    }
    assertEquals(1, Await.result(first).getOffset());
    assertEquals(2, Await.result(alice.publish("room", "third")).getOffset());
  }

  // Helpers.

  private static int bufferedOf(Client client, Subscription sub) {
    synchronized (client.lock) {
      return sub.bufferedForTesting();
    }
  }

  static List<Long> offsets(List<Message> messages) {
    return messages.stream().map(Message::getOffset).collect(Collectors.toList());
  }

  static List<String> texts(List<Message> messages) {
    return messages.stream().map(Message::getText).collect(Collectors.toList());
  }

  static List<String> users(List<Member> members) {
    return members.stream().map(Member::getUser).sorted().collect(Collectors.toList());
  }

  /** A Flow subscriber that requests only what the test asks for. */
  static final class Reader implements Flow.Subscriber<Message> {
    final AtomicReference<Flow.Subscription> subscription = new AtomicReference<>();
    final BlockingQueue<Message> items = new ArrayBlockingQueue<>(10_000);
    final BlockingQueue<Object> terminal = new ArrayBlockingQueue<>(2);
    private final long initial;

    Reader(long initial) {
      this.initial = initial;
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
      subscription.set(s);
      if (initial > 0) {
        s.request(initial);
      }
    }

    @Override
    public void onNext(Message item) {
      items.add(item);
    }

    @Override
    public void onError(Throwable throwable) {
      terminal.add(throwable);
    }

    @Override
    public void onComplete() {
      terminal.add("complete");
    }

    void request(long n) {
      Await.until("subscribed", () -> subscription.get() != null);
      subscription.get().request(n);
    }

    List<Message> take(int n) {
      List<Message> out = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        out.add(Recorder.take(items, Await.WAIT, "message"));
      }
      return out;
    }
  }

}
