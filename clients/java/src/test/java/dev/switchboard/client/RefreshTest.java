package dev.switchboard.client;

import static dev.switchboard.client.ClientTest.offsets;
import static dev.switchboard.client.ClientTest.texts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.switchboard.v1.CloseCode;
import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.PingReply;
import dev.switchboard.v1.RefreshReply;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Token refresh against a production-mode server (HS256 tokens signed here), and the server's
 * command rate limit: a refreshed connection outlives its first token, reconnects log in with the
 * refreshed token, refused refreshes end the client, rate-limited commands carry {@code
 * retry_after_ms}, and sustained violations close with 4003 and reconnect.
 */
class RefreshTest extends ServerTest {
  private static final long HOUR = 3600;

  @Test
  void refreshKeepsTheConnectionPastTheFirstTokensExpiry() throws Exception {
    try (TestServer production = ReconnectTest.productionServer()) {
      Recorder events = new Recorder();
      long exp = nowSeconds() + 2;
      Client alice = connect(production, "alice", exp, events);
      assertEquals(exp * 1000, alice.getExpiresAtMs());
      Recorder room = new Recorder();
      join(alice, "room", room);
      String clientId = alice.getClientId();

      long later = nowSeconds() + HOUR;
      RefreshReply reply = Await.result(alice.refresh(Jwt.sign("alice", Jwt.SECRET, later)));
      assertEquals(later * 1000, reply.getExpiresAtMs());
      assertEquals(later * 1000, alice.getExpiresAtMs());

      sleepPast(exp);
      PingReply pong = Await.result(alice.ping());
      assertTrue(pong.getTimestampMs() > exp * 1000, "server time " + pong.getTimestampMs());
      Await.result(alice.publish("room", "still here"));
      assertEquals("still here", room.next().getText());
      assertEquals(ConnectionState.CONNECTED, alice.getState());
      assertEquals(clientId, alice.getClientId()); // the same connection throughout
      assertEquals(Arrays.asList(ConnectionState.CONNECTING, ConnectionState.CONNECTED),
          events.stateList());
      alice.close();
    }
  }

  @Test
  void reconnectAfterTheFirstTokenExpiredLogsInWithTheRefreshedToken() throws Exception {
    try (TestServer production = ReconnectTest.productionServer()) {
      Recorder events = new Recorder();
      long exp = nowSeconds() + 2;
      Client alice = connect(production, "alice", exp, events);
      Client bob = connect(production, "bob", nowSeconds() + HOUR, null);
      Await.result(bob.join("feed"));
      Recorder feed = new Recorder();
      Subscription sub = join(alice, "feed", feed);
      Await.result(bob.publish("feed", "m1"));
      assertEquals("m1", feed.next().getText());

      long later = nowSeconds() + HOUR;
      Await.result(alice.refresh(Jwt.sign("alice", Jwt.SECRET, later)));
      sleepPast(exp); // the token alice connected with is expired now
      String before = alice.getClientId();
      alice.dropConnectionForTesting();
      StateChange lost = events.waitFor(ConnectionState.RECONNECTING);
      assertEquals(Integer.valueOf(CloseCodes.ABNORMAL_CLOSURE), lost.getCode());
      Await.result(bob.publish("feed", "m2"));
      events.waitFor(ConnectionState.CONNECTED, events.states.indexOf(lost));
      Await.result(bob.publish("feed", "m3"));

      List<Message> received = feed.next(2);
      assertEquals(Arrays.asList(2L, 3L), offsets(received));
      assertEquals(Arrays.asList("m2", "m3"), texts(received));
      feed.assertNoMessage(Duration.ofMillis(200));
      assertTrue(feed.gaps.isEmpty());
      assertEquals(3, sub.getPosition().getOffset());
      assertNotEquals(before, alice.getClientId()); // a new connection
      assertEquals("alice", alice.getUser());
      // The new login reports the expiry of the token it used: the refreshed one.
      assertEquals(later * 1000, alice.getExpiresAtMs());
      assertEquals(ConnectionState.CONNECTED, alice.getState());
      assertFalse(events.stateList().contains(ConnectionState.CLOSED));
      alice.close();
      bob.close();
    }
  }

  @Test
  void refreshWithAnotherUsersTokenIsRefusedAndEndsTheClient() throws Exception {
    try (TestServer production = ReconnectTest.productionServer()) {
      Recorder events = new Recorder();
      long exp = nowSeconds() + HOUR;
      Client alice = connect(production, "alice", exp, events);
      Recorder room = new Recorder();
      join(alice, "room", room);

      ServerException refused = Await.failure(
          alice.refresh(Jwt.sign("mallory", Jwt.SECRET, nowSeconds() + HOUR)),
          ServerException.class);
      assertEquals(ErrorCode.ERROR_CODE_UNAUTHORIZED, refused.getCode());
      assertFalse(refused.isTemporary());
      assertEquals("refresh", refused.getCommand());
      assertEquals(0, refused.getRetryAfterMs());

      StateChange last = Await.result(alice.closed());
      assertEquals(Integer.valueOf(1008), last.getCode());
      assertTrue(last.getError() instanceof ConnectionClosedException, String.valueOf(last));
      Await.until("CLOSED is delivered", () -> events.states.size() == 3);
      assertEquals(
          Arrays.asList(ConnectionState.CONNECTING, ConnectionState.CONNECTED, ConnectionState.CLOSED),
          events.stateList());
      Object end = Recorder.take(room.closes, Await.WAIT, "end");
      assertTrue(end instanceof ConnectionClosedException, String.valueOf(end));
      assertEquals(Integer.valueOf(1008), ((ConnectionClosedException) end).getCode());
      assertEquals(exp * 1000, alice.getExpiresAtMs()); // the refused token changed nothing
      Await.sleep(300);
      assertEquals(ConnectionState.CLOSED, alice.getState());
      ConnectionClosedException after =
          Await.failure(alice.ping(), ConnectionClosedException.class);
      assertEquals(Integer.valueOf(1008), after.getCode());
    }
  }

  @Test
  void refreshWithAnExpiredTokenIsRefusedAndEndsTheClient() throws Exception {
    try (TestServer production = ReconnectTest.productionServer()) {
      Recorder events = new Recorder();
      Client alice = connect(production, "alice", nowSeconds() + HOUR, events);

      ServerException refused = Await.failure(
          alice.refresh(Jwt.sign("alice", Jwt.SECRET, nowSeconds() - 60)), ServerException.class);
      assertEquals(ErrorCode.ERROR_CODE_TOKEN_EXPIRED, refused.getCode());
      assertFalse(refused.isTemporary());

      StateChange last = Await.result(alice.closed());
      assertEquals(Integer.valueOf(1008), last.getCode());
      Await.sleep(300);
      assertFalse(events.stateList().contains(ConnectionState.RECONNECTING));
      assertEquals(ConnectionState.CLOSED, alice.getState());
    }
  }

  @Test
  void rateLimitedCommandCarriesRetryAfter() throws Exception {
    try (TestServer limited = rateLimitedServer(100)) {
      Recorder events = new Recorder();
      Client alice = Await.result(Client.connect(limited.url,
          ClientOptions.builder().name("alice").listener(events).build()));
      track(alice);

      List<CompletableFuture<PingReply>> pings = new ArrayList<>();
      for (int i = 0; i < 10; i++) {
        pings.add(alice.ping());
      }
      List<ServerException> refused = new ArrayList<>();
      for (CompletableFuture<PingReply> ping : pings) {
        try {
          Await.result(ping);
        } catch (ServerException e) {
          refused.add(e);
        }
      }
      assertFalse(refused.isEmpty(), "no ping was rate limited");
      int wait = 0;
      for (ServerException e : refused) {
        assertEquals(ErrorCode.ERROR_CODE_RATE_LIMITED, e.getCode());
        assertTrue(e.isTemporary());
        assertEquals("ping", e.getCommand());
        assertTrue(e.getRetryAfterMs() > 0, "retry after " + e.getRetryAfterMs());
        assertTrue(e.getRetryAfterMs() <= 1000, "retry after " + e.getRetryAfterMs());
        wait = Math.max(wait, e.getRetryAfterMs());
      }

      // Waiting as told is enough: the same connection accepts the next command.
      String clientId = alice.getClientId();
      Await.sleep(wait + 50);
      Await.result(alice.ping());
      assertEquals(clientId, alice.getClientId());
      assertEquals(Arrays.asList(ConnectionState.CONNECTING, ConnectionState.CONNECTED),
          events.stateList());
      alice.close();
    }
  }

  @Test
  void sustainedRateLimitViolationsClose4003AndTheClientReconnects() throws Exception {
    try (TestServer limited = rateLimitedServer(3)) {
      Recorder events = new Recorder();
      Client alice = Await.result(Client.connect(limited.url, ClientOptions.builder()
          .name("alice").backoff(ReconnectTest.FAST).listener(events).build()));
      track(alice);
      Recorder room = new Recorder();
      join(alice, "room", room); // the burst of 2 is spent: connect, join

      // Three of these (at least) are refused: the third refusal closes the connection. Pings
      // still unanswered then are sent again on the next one (and may be refused there too).
      List<CompletableFuture<PingReply>> pings = new ArrayList<>();
      for (int i = 0; i < 5; i++) {
        pings.add(alice.ping());
      }
      StateChange lost = events.waitFor(ConnectionState.RECONNECTING);
      assertEquals(Integer.valueOf(CloseCode.CLOSE_CODE_RATE_LIMITED.getNumber()), lost.getCode());
      events.waitFor(ConnectionState.CONNECTED, events.states.indexOf(lost));
      for (CompletableFuture<PingReply> ping : pings) {
        try {
          Await.result(ping);
        } catch (ServerException e) {
          assertEquals(ErrorCode.ERROR_CODE_RATE_LIMITED, e.getCode());
        }
      }
      // The rooms are rejoined on the new connection; wait out the limit and use it.
      Await.sleep(1100);
      Await.result(alice.publish("room", "after 4003"));
      assertEquals("after 4003", room.next().getText());
      assertEquals(ConnectionState.CONNECTED, alice.getState());
      alice.close();
    }
  }

  /** A development-mode server allowing 2 commands a second per connection (burst 2). */
  private static TestServer rateLimitedServer(int strikes) throws Exception {
    Map<String, String> env = new HashMap<>();
    env.put("SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND", "2");
    env.put("SWITCHBOARD_LIMITS__COMMAND_BURST", "2");
    env.put("SWITCHBOARD_LIMITS__RATE_LIMIT_STRIKES", Integer.toString(strikes));
    return TestServer.start(env);
  }

  /** A client of a production-mode server, logged in with a token for {@code user}. */
  private Client connect(TestServer production, String user, long expiresAt, Recorder events) {
    ClientOptions.Builder options = ClientOptions.builder()
        .token(Jwt.sign(user, Jwt.SECRET, expiresAt))
        .backoff(ReconnectTest.FAST);
    if (events != null) {
      options.listener(events);
    }
    Client client = Await.result(Client.connect(production.url, options.build()));
    track(client);
    assertEquals(user, client.getUser());
    return client;
  }

  private static long nowSeconds() {
    return System.currentTimeMillis() / 1000;
  }

  /** Sleeps until the server has certainly seen a token expiring at {@code expiresAt} expire. */
  private static void sleepPast(long expiresAt) {
    long wait = expiresAt * 1000 + 1_500 - System.currentTimeMillis();
    assertTrue(wait < 5_000, "expiry too far away: " + wait + " ms");
    if (wait > 0) {
      Await.sleep(wait);
    }
  }
}
