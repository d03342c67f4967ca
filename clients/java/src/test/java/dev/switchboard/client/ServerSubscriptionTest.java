package dev.switchboard.client;

import static dev.switchboard.client.ClientTest.offsets;
import static dev.switchboard.client.ClientTest.texts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.ServerFrame;
import dev.switchboard.v1.Subscribed;
import java.io.InterruptedIOException;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import okhttp3.OkHttpClient;
import org.junit.jupiter.api.Test;

/**
 * Server-side subscriptions: a backend subscribes and unsubscribes a user through the HTTP API
 * ({@code PUT} / {@code DELETE /api/v1/users/{user}/rooms/{room}}), and the client turns the
 * {@code Subscribed} and {@code Unsubscribed} pushes into subscriptions, against a real server.
 */
class ServerSubscriptionTest extends ServerTest {
  private static final Duration QUIET = Duration.ofMillis(300);

  @Test
  void subscribedHookHandsOverALiveSubscription() {
    HttpApi api = new HttpApi(server);
    Recorder events = new Recorder();
    Client alice = connect("alice", b -> b.listener(events));
    assertEquals(1, api.publish("news", "old 1"));
    assertEquals(2, api.publish("news", "old 2"));

    api.subscribe("alice", "news");
    Subscription sub = events.nextSubscribed();
    assertEquals("news", sub.getRoom());
    assertTrue(sub.isActive());
    assertEquals(2, sub.getPosition().getOffset()); // live from the pushed position
    assertFalse(sub.getPosition().getEpoch().isEmpty());
    assertNull(sub.getRecovered());
    assertFalse(sub.getPresenceEvents());

    ClientTest.Reader reader = new ClientTest.Reader(Long.MAX_VALUE);
    sub.messages().subscribe(reader);
    assertEquals(3, api.publish("news", "hello"));
    Message hello = reader.take(1).get(0);
    assertEquals("news", hello.getRoom());
    assertEquals(3, hello.getOffset());
    assertEquals("hello", hello.getText());

    // Alice is a member: she may publish, and joining again is refused.
    assertEquals(4, Await.result(alice.publish("news", "from alice")).getOffset());
    Message own = reader.take(1).get(0);
    assertEquals(4, own.getOffset());
    assertEquals("alice", own.getSender());
    ServerException twice = Await.failure(alice.join("news"), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_ALREADY_JOINED, twice.getCode());
    assertEquals(5, api.publish("news", "still here"));
    assertEquals(Arrays.asList("still here"), texts(reader.take(1)));
    assertTrue(sub.isActive());
    assertEquals(5, sub.getPosition().getOffset());

    events.assertNoSubscribed(QUIET); // announced once
    assertTrue(reader.items.isEmpty(), () -> "unexpected " + reader.items);
    events.assertCallbacksOffTheReader();
  }

  @Test
  void aRoomTheClientHasIsNotAnnouncedAgain() {
    HttpApi api = new HttpApi(server);
    Recorder events = new Recorder();
    Client alice = connect("alice", b -> b.listener(events));
    Recorder mine = new Recorder();
    Subscription own = join(alice, "mine", mine);
    api.subscribe("alice", "theirs");
    Subscription theirs = events.nextSubscribed();
    assertEquals("theirs", theirs.getRoom());

    api.subscribe("alice", "mine"); // already joined: the server pushes nothing
    api.subscribe("alice", "theirs");
    // Should a Subscribed push come for a room the client has, it keeps that subscription.
    alice.receiveForTesting(subscribedPush("mine", own));
    alice.receiveForTesting(subscribedPush("theirs", theirs));
    events.assertNoSubscribed(QUIET);

    assertEquals(1, api.publish("mine", "to mine"));
    Message m = mine.next();
    assertEquals(1, m.getOffset());
    assertEquals("to mine", m.getText());
    assertTrue(own.isActive());
    ClientTest.Reader reader = new ClientTest.Reader(Long.MAX_VALUE);
    theirs.messages().subscribe(reader);
    assertEquals(1, api.publish("theirs", "to theirs"));
    assertEquals(Arrays.asList("to theirs"), texts(reader.take(1)));
    assertTrue(theirs.isActive());
  }

  @Test
  void unsubscribedEndsTheSubscriptionAndTheRoomCanBeJoinedAgain() {
    HttpApi api = new HttpApi(server);
    Recorder events = new Recorder();
    Client alice = connect("alice", b -> b.listener(events));
    api.subscribe("alice", "news");
    Subscription sub = events.nextSubscribed();
    ClientTest.Reader reader = new ClientTest.Reader(Long.MAX_VALUE);
    sub.messages().subscribe(reader);
    assertEquals(1, api.publish("news", "one"));
    assertEquals(Arrays.asList(1L), offsets(reader.take(1)));

    api.unsubscribe("alice", "news");
    assertEquals("complete", Recorder.take(reader.terminal, Await.WAIT, "completion"));
    assertFalse(sub.isActive());
    assertEquals(2, api.publish("news", "two"));
    ServerException notJoined =
        Await.failure(alice.publish("news", "not a member"), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_NOT_JOINED, notJoined.getCode());
    assertTrue(reader.items.isEmpty(), () -> "unexpected " + reader.items);

    // The client forgot the room: joining it again works, live from offset 2.
    Recorder again = new Recorder();
    Subscription joined = join(alice, "news", again);
    assertNotSame(sub, joined);
    assertEquals(2, joined.getPosition().getOffset());
    assertEquals(3, api.publish("news", "three"));
    Message three = again.next();
    assertEquals(3, three.getOffset());
    assertEquals("three", three.getText());

    // An unsubscribe ends the app's own join the same way, as a leave does.
    api.unsubscribe("alice", "news");
    assertEquals("closed", Recorder.take(again.closes, Await.WAIT, "end"));
    assertFalse(joined.isActive());
    assertTrue(reader.items.isEmpty());
    events.assertNoSubscribed(QUIET);
    Await.result(alice.join("news")); // and the room can be joined again
  }

  @Test
  void anUnsubscribedRoomIsForgottenAcrossReconnects() {
    HttpApi api = new HttpApi(server);
    Recorder events = new Recorder();
    Client alice = connect("alice", b -> b.backoff(ReconnectTest.FAST).listener(events));
    api.subscribe("alice", "news");
    Subscription sub = events.nextSubscribed();
    api.unsubscribe("alice", "news");
    Await.until("the subscription ended", () -> !sub.isActive());

    String first = alice.getClientId();
    alice.dropConnectionForTesting();
    Await.until("alice reconnected", () -> alice.getState() == ConnectionState.CONNECTED
        && !alice.getClientId().equals(first));
    assertEquals("{}", api.presence("news")); // not rejoined
    ServerException notJoined = Await.failure(alice.leave("news"), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_NOT_JOINED, notJoined.getCode());
    events.assertNoSubscribed(Duration.ZERO);
  }

  @Test
  void serverSideSubscriptionSurvivesAReconnect() {
    HttpApi api = new HttpApi(server);
    Recorder events = new Recorder();
    // Holds the reconnect's WebSocket upgrade while the gate is set, so the messages below are
    // published while alice is certainly not connected.
    AtomicReference<CountDownLatch> gate = new AtomicReference<>();
    OkHttpClient held = new OkHttpClient.Builder().addInterceptor(chain -> {
      CountDownLatch g = gate.get();
      if (g != null) {
        try {
          if (!g.await(Await.WAIT.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new InterruptedIOException("the test never opened the gate");
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new InterruptedIOException("interrupted at the gate");
        }
      }
      return chain.proceed(chain.request());
    }).build();
    Client alice = connect("alice",
        b -> b.backoff(ReconnectTest.FAST).listener(events).okHttpClient(held));
    api.subscribe("alice", "feed");
    Subscription sub = events.nextSubscribed();
    ClientTest.Reader reader = new ClientTest.Reader(Long.MAX_VALUE);
    sub.messages().subscribe(reader);
    assertEquals(1, api.publish("feed", "m1"));
    assertEquals(Arrays.asList("m1"), texts(reader.take(1)));
    String firstClient = alice.getClientId();
    assertTrue(api.presence("feed").contains(firstClient));

    CountDownLatch closed = new CountDownLatch(1);
    gate.set(closed);
    alice.dropConnectionForTesting();
    StateChange lost = events.waitFor(ConnectionState.RECONNECTING);
    Await.until("the server forgot alice's membership",
        () -> !api.presence("feed").contains("alice"));
    assertEquals(2, api.publish("feed", "m2"));
    assertEquals(3, api.publish("feed", "m3"));
    assertEquals(ConnectionState.RECONNECTING, alice.getState());
    gate.set(null);
    closed.countDown();

    events.waitFor(ConnectionState.CONNECTED, events.states.indexOf(lost));
    assertEquals(4, api.publish("feed", "m4"));
    List<Message> received = reader.take(3);
    assertEquals(Arrays.asList(2L, 3L, 4L), offsets(received));
    assertEquals(Arrays.asList("m2", "m3", "m4"), texts(received));
    Await.sleep(QUIET.toMillis());
    assertTrue(reader.items.isEmpty(), () -> "duplicates: " + reader.items);
    assertTrue(reader.terminal.isEmpty(), () -> "ended: " + reader.terminal);
    events.assertNoSubscribed(Duration.ZERO); // the same subscription goes on
    assertTrue(sub.isActive());
    assertEquals(4, sub.getPosition().getOffset());
    String presence = api.presence("feed"); // the rejoin made alice a member again
    assertTrue(presence.contains(alice.getClientId()), presence);
    assertFalse(presence.contains(firstClient), presence);
  }

  @Test
  void refusedRejoinEndsTheSubscriptionWithTheError() throws Exception {
    Map<String, String> env = new HashMap<>();
    env.put("SWITCHBOARD_PERMISSIONS__DEFAULT__JOIN", "nobody"); // only backends subscribe
    try (TestServer locked = TestServer.start(env)) {
      HttpApi api = new HttpApi(locked);
      Recorder events = new Recorder();
      ClientOptions options = ClientOptions.builder()
          .name("alice")
          .backoff(ReconnectTest.FAST)
          .listener(events)
          .build();
      Client alice = Await.result(Client.connect(locked.url, options));
      track(alice);
      ServerException denied = Await.failure(alice.join("vip"), ServerException.class);
      assertEquals(ErrorCode.ERROR_CODE_PERMISSION_DENIED, denied.getCode());

      api.subscribe("alice", "vip");
      Subscription sub = events.nextSubscribed();
      ClientTest.Reader reader = new ClientTest.Reader(Long.MAX_VALUE);
      sub.messages().subscribe(reader);
      assertEquals(1, api.publish("vip", "welcome"));
      assertEquals(Arrays.asList("welcome"), texts(reader.take(1)));

      alice.dropConnectionForTesting();
      StateChange lost = events.waitFor(ConnectionState.RECONNECTING);
      events.waitFor(ConnectionState.CONNECTED, events.states.indexOf(lost));
      Object end = Recorder.take(reader.terminal, Await.WAIT, "end");
      assertTrue(end instanceof ServerException, String.valueOf(end));
      assertEquals(ErrorCode.ERROR_CODE_PERMISSION_DENIED, ((ServerException) end).getCode());
      assertEquals("join", ((ServerException) end).getCommand());
      assertFalse(sub.isActive());
      assertEquals(ConnectionState.CONNECTED, alice.getState());

      // The client forgot the room: a new subscribe announces a new subscription.
      api.subscribe("alice", "vip");
      Subscription again = events.nextSubscribed();
      assertNotSame(sub, again);
      assertTrue(again.isActive());
      assertEquals(1, again.getPosition().getOffset());
      assertEquals(2, api.publish("vip", "back"));
      ClientTest.Reader second = new ClientTest.Reader(Long.MAX_VALUE);
      again.messages().subscribe(second);
      Message back = second.take(1).get(0);
      assertEquals(2, back.getOffset());
      assertEquals("back", back.getText());
      alice.close();
    }
  }

  @Test
  void withoutAListenerTheSubscriptionIsStillKeptAndRejoined() {
    HttpApi api = new HttpApi(server);
    Client alice = connect("alice", b -> b.backoff(ReconnectTest.FAST));
    api.subscribe("alice", "quiet");
    String first = alice.getClientId();
    Await.until("alice is a member", () -> api.presence("quiet").contains(first));

    alice.dropConnectionForTesting();
    Await.until("alice reconnected", () -> alice.getState() == ConnectionState.CONNECTED
        && !alice.getClientId().equals(first));
    String second = alice.getClientId();
    Await.until("the room was rejoined", () -> api.presence("quiet").contains(second));
    ServerException twice = Await.failure(alice.join("quiet"), ServerException.class);
    assertEquals(ErrorCode.ERROR_CODE_ALREADY_JOINED, twice.getCode());

    Await.result(alice.leave("quiet"));
    Await.until("alice left", () -> !api.presence("quiet").contains("alice"));
    Subscription joined = Await.result(alice.join("quiet"));
    assertTrue(joined.isActive());
    assertEquals(0, joined.getPosition().getOffset());
  }

  private static ServerFrame subscribedPush(String room, Subscription sub) {
    return ServerFrame.newBuilder()
        .setSubscribed(Subscribed.newBuilder().setRoom(room).setPosition(sub.getPosition()))
        .build();
  }
}
