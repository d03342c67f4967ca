package dev.switchboard.client;

import static dev.switchboard.client.ClientTest.offsets;
import static dev.switchboard.client.ClientTest.texts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.PublishReply;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Reconnect, recovery, close codes and timeouts, against real server processes: dropped sockets,
 * SIGTERM and a restart on the same port, SIGSTOP, a production-mode server.
 */
class ReconnectTest extends ServerTest {
  static final Backoff FAST = Backoff.of(Duration.ofMillis(50), Duration.ofMillis(200));

  @Test
  void networkDropRecoversMissedMessagesWithoutDuplicates() {
    Client alice = connect("alice");
    Recorder bobEvents = new Recorder();
    Client bob = connect("bob", b -> b.backoff(FAST).listener(bobEvents));
    Await.result(alice.join("feed"));
    Recorder feed = new Recorder();
    Subscription sub = join(bob, "feed", feed);
    for (int i = 1; i <= 3; i++) {
      Await.result(alice.publish("feed", "m" + i));
    }
    assertEquals(Arrays.asList(1L, 2L, 3L), offsets(feed.next(3)));

    bob.dropConnectionForTesting();
    StateChange lost = bobEvents.waitFor(ConnectionState.RECONNECTING);
    assertEquals(Integer.valueOf(CloseCodes.ABNORMAL_CLOSURE), lost.getCode());
    assertEquals(1, lost.getAttempt());
    for (int i = 4; i <= 8; i++) { // published while bob is away
      Await.result(alice.publish("feed", "m" + i));
    }
    bobEvents.waitFor(ConnectionState.CONNECTED, bobEvents.states.indexOf(lost));
    Await.result(alice.publish("feed", "m9"));

    List<Message> received = feed.next(6);
    assertEquals(Arrays.asList(4L, 5L, 6L, 7L, 8L, 9L), offsets(received));
    assertEquals(Arrays.asList("m4", "m5", "m6", "m7", "m8", "m9"), texts(received));
    feed.assertNoMessage(Duration.ofMillis(300));
    assertTrue(feed.gaps.isEmpty());
    assertEquals(9, sub.getPosition().getOffset());
  }

  @Test
  void repeatedDropsWhilePublishingLoseAndDuplicateNothing() {
    Client alice = connect("alice");
    Client bob = connect("bob", b -> b.backoff(FAST));
    Await.result(alice.join("feed"));
    Recorder feed = new Recorder();
    join(bob, "feed", feed);
    for (int i = 1; i <= 60; i++) {
      Await.result(alice.publish("feed", "m" + i));
      if (i % 15 == 0) {
        bob.dropConnectionForTesting();
      }
      Await.sleep(5);
    }
    List<Long> expected = new ArrayList<>();
    for (long i = 1; i <= 60; i++) {
      expected.add(i);
    }
    assertEquals(expected, offsets(feed.next(60)));
    feed.assertNoMessage(Duration.ofMillis(200));
  }

  @Test
  void commandsIssuedWhileReconnectingWaitForTheConnection() throws Exception {
    Recorder events = new Recorder();
    Client alice = connect("alice", b -> b.backoff(FAST).listener(events));
    Recorder room = new Recorder();
    join(alice, "room", room);
    CompletableFuture<PublishReply> ack;
    server.pause(); // no reconnect can complete until the server runs again
    try {
      alice.dropConnectionForTesting();
      events.waitFor(ConnectionState.RECONNECTING);
      ack = alice.publish("room", "sent while away");
      Await.sleep(100);
      assertFalse(ack.isDone());
      assertEquals(ConnectionState.RECONNECTING, alice.getState());
    } finally {
      server.resume();
    }
    assertEquals(1, Await.result(ack).getOffset());
    assertEquals(ConnectionState.CONNECTED, alice.getState());
    assertEquals("sent while away", room.next().getText());
    assertEquals(Arrays.asList("sent while away"),
        texts(Await.result(alice.history("room")).getMessages()));
  }

  @Test
  void inFlightPublishWithIdempotencyKeyIsResentOnce() throws Exception {
    Client alice = connect("alice", b -> b.backoff(FAST));
    Client bob = connect("bob");
    Await.result(alice.join("orders"));
    Recorder orders = new Recorder();
    join(bob, "orders", orders);
    CompletableFuture<PublishReply> publish;
    server.pause();
    try {
      publish = alice.publish("orders", Content.text("paid"), "order-1");
      Await.sleep(200); // written to the socket, no reply possible
      alice.dropConnectionForTesting();
    } finally {
      server.resume();
    }
    assertEquals(1, Await.result(publish).getOffset());
    assertEquals("paid", orders.next().getText());
    Await.result(alice.publish("orders", "next"));
    assertEquals(2, orders.next().getOffset()); // "paid" was delivered once
  }

  @Test
  void inFlightDirectFailsAsLostInsteadOfRiskingADuplicate() throws Exception {
    Client alice = connect("alice", b -> b.backoff(FAST));
    connect("bob");
    CompletableFuture<?> direct;
    server.pause();
    try {
      direct = alice.direct("bob", "psst");
      Await.sleep(200);
      alice.dropConnectionForTesting();
    } finally {
      server.resume();
    }
    ConnectionLostException lost = Await.failure(direct, ConnectionLostException.class);
    assertEquals("direct", lost.getCommand());
    Await.result(alice.direct("bob", "again")); // reconnected
  }

  @Test
  void serverShutdownClosesWith1001AndTheClientReconnects() throws Exception {
    Recorder events = new Recorder();
    Recorder room = new Recorder();
    Client alice = connect("alice", b -> b.backoff(FAST).listener(events));
    join(alice, "room", room);
    Await.result(alice.publish("room", "before"));
    assertEquals(1, room.next().getOffset());

    assertEquals(0, server.stop()); // SIGTERM: graceful, close 1001
    StateChange lost = events.waitFor(ConnectionState.RECONNECTING);
    assertEquals(Integer.valueOf(1001), lost.getCode());
    Await.sleep(300); // a few attempts fail while no server listens
    assertEquals(ConnectionState.RECONNECTING, alice.getState());

    try (TestServer restarted = TestServer.startOnPort(server.port)) {
      assertEquals(server.port, restarted.port);
      events.waitFor(ConnectionState.CONNECTED, events.states.indexOf(lost));
      // The new server has a new epoch: the subscription is told it cannot
      // recover, then continues live.
      Await.result(alice.publish("room", "after"));
      Message msg = room.next();
      assertEquals(1, msg.getOffset());
      assertEquals("after", msg.getText());
      assertEquals(1, room.gaps.size());
      Gap gap = room.gaps.get(0);
      assertEquals(GapReason.RECOVERY_FAILED, gap.getReason());
      assertEquals(1, gap.getLastOffset());
      assertNotNull(gap.getPosition());
      assertEquals(0, gap.getPosition().getOffset());
      assertNotEquals(gap.getEpoch(), gap.getPosition().getEpoch());
      // The gap was delivered before the message after it.
      assertTrue(room.order.indexOf(gap) < room.order.indexOf(msg));
      alice.close();
    }
    assertEquals(ConnectionState.CLOSED, events.stateList().get(events.states.size() - 1));
  }

  @Test
  void commandTimesOutWhenTheServerDoesNotAnswer() throws Exception {
    Client alice = connect("alice");
    Await.result(alice.join("room"));
    server.pause();
    long started = System.nanoTime();
    CommandTimeoutException timedOut;
    try {
      timedOut = Await.failure(
          alice.publish("room", Content.text("into the void"),
              PublishOptions.builder().timeout(Duration.ofMillis(500)).build()),
          CommandTimeoutException.class);
    } finally {
      server.resume();
    }
    double elapsed = (System.nanoTime() - started) / 1e9;
    assertTrue(elapsed >= 0.45 && elapsed < 2.0, "elapsed " + elapsed);
    assertEquals("publish", timedOut.getCommand());
    assertEquals(Duration.ofMillis(500), timedOut.getTimeout());
    assertTrue(timedOut.getMessage().contains("timed out after 0.5 s"), timedOut.getMessage());
    assertTrue(Await.result(alice.publish("room", "back")).getOffset() >= 1);
  }

  @Test
  void defaultCommandTimeoutBoundsWaitingForAReconnect() {
    Client alice = connect("alice", b -> b.commandTimeout(Duration.ofMillis(500)).backoff(FAST));
    Await.result(alice.join("room"));
    server.kill(); // gone for good
    long started = System.nanoTime();
    Await.failure(alice.history("room"), CommandTimeoutException.class);
    assertTrue((System.nanoTime() - started) / 1e9 < 2.0);
    assertEquals(ConnectionState.RECONNECTING, alice.getState());
    alice.close();
    assertEquals(ConnectionState.CLOSED, alice.getState());
    Await.until("every client thread ended",
        () -> alice.threadsForTesting().stream().noneMatch(Thread::isAlive));
  }

  @Test
  void refusedTokenIsTerminal() throws Exception {
    try (TestServer production = productionServer()) {
      Recorder events = new Recorder();
      ClientOptions options = ClientOptions.builder()
          .token(Jwt.sign("eve", "wrong-secret", null))
          .listener(events)
          .build();
      ServerException refused =
          Await.failure(Client.connect(production.url, options), ServerException.class);
      assertEquals(ErrorCode.ERROR_CODE_UNAUTHORIZED, refused.getCode());
      assertFalse(refused.isTemporary());
      Await.until("CLOSED is delivered", () -> events.states.size() == 2);
      assertEquals(Arrays.asList(ConnectionState.CONNECTING, ConnectionState.CLOSED),
          events.stateList());
    }
  }

  @Test
  void close1008OnTokenExpiryDoesNotReconnect() throws Exception {
    try (TestServer production = productionServer()) {
      Recorder events = new Recorder();
      long exp = System.currentTimeMillis() / 1000 + 2;
      ClientOptions options = ClientOptions.builder()
          .token(Jwt.sign("alice", Jwt.SECRET, exp))
          .backoff(FAST)
          .listener(events)
          .build();
      Client client = Await.result(Client.connect(production.url, options));
      track(client);
      assertEquals("alice", client.getUser());
      Recorder room = new Recorder();
      join(client, "room", room);
      StateChange last = Await.result(client.closed(), Duration.ofSeconds(10));
      assertEquals(Integer.valueOf(1008), last.getCode());
      assertTrue(last.getError() instanceof ConnectionClosedException);
      Await.until("CLOSED is delivered", () -> events.states.size() == 3);
      assertEquals(
          Arrays.asList(ConnectionState.CONNECTING, ConnectionState.CONNECTED, ConnectionState.CLOSED),
          events.stateList());
      Object end = Recorder.take(room.closes, Await.WAIT, "end");
      assertTrue(end instanceof ConnectionClosedException, String.valueOf(end));
      assertEquals(Integer.valueOf(1008), ((ConnectionClosedException) end).getCode());
      ConnectionClosedException tooLate =
          Await.failure(client.publish("room", "too late"), ConnectionClosedException.class);
      assertEquals(Integer.valueOf(1008), tooLate.getCode());
      Await.sleep(300);
      assertEquals(ConnectionState.CLOSED, client.getState());
      Await.until("every client thread ended",
          () -> client.threadsForTesting().stream().noneMatch(Thread::isAlive));
    }
  }

  @Test
  void closeIsFinalAndEndsTheSubscriptionAfterItsBuffer() {
    Recorder events = new Recorder();
    Client alice = connect("alice", b -> b.listener(events));
    Subscription sub = Await.result(alice.join("room"));
    Await.result(alice.publish("room", "last words"));
    Await.until("the message is buffered", () -> {
      synchronized (alice.lock) {
        return sub.bufferedForTesting() == 1;
      }
    });
    alice.close();
    alice.close(); // idempotent
    ClientTest.Reader reader = new ClientTest.Reader(Long.MAX_VALUE);
    sub.messages().subscribe(reader);
    assertEquals(Arrays.asList("last words"), texts(reader.take(1))); // buffered, then the end
    assertEquals("complete", Recorder.take(reader.terminal, Await.WAIT, "completion"));
    StateChange last = Await.result(alice.closed());
    assertEquals(Integer.valueOf(1000), last.getCode());
    assertEquals(null, last.getError());
    assertFalse(events.stateList().contains(ConnectionState.RECONNECTING));
    ConnectionClosedException closed =
        Await.failure(alice.publish("room", "after close"), ConnectionClosedException.class);
    assertEquals(Integer.valueOf(1000), closed.getCode());
  }

  static TestServer productionServer() throws Exception {
    Map<String, String> env = new HashMap<>();
    env.put("SWITCHBOARD_DEVELOPMENT", "false");
    env.put("SWITCHBOARD_AUTH__JWT_SECRET", Jwt.SECRET);
    return TestServer.start(env);
  }
}
