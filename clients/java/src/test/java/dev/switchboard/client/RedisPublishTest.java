package dev.switchboard.client;

import static dev.switchboard.client.PublishTest.GENERATED_KEY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.PublishReply;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Publishes through a node whose broker is a real {@code redis-server} that hangs (SIGSTOP): the
 * client's retries with the publish's key, and the key a failure carries.
 *
 * <p>The node gives up on Redis after 200 ms ({@code redis.command_timeout}): a publish it sent
 * to the hung Redis is answered {@code ERROR_CODE_OUTCOME_UNKNOWN}, and then, until a health
 * check is answered, every publish waits up to 200 ms for Redis and is answered {@code
 * ERROR_CODE_UNAVAILABLE}. Health checks run every 100 ms (default 1 s), so the node finds Redis
 * answering right after a SIGCONT.
 */
class RedisPublishTest {
  private TestRedis redis;
  private TestServer server;
  private final List<Client> clients = new ArrayList<>();

  /**
   * Starts Redis and a node using it, waits until the node is ready, and publishes once (through
   * the HTTP API) to a room of its own. That first publish makes Redis load the node's publish
   * script, which the node sends as EVALSHA and loads only when Redis answers NOSCRIPT: on a
   * fresh Redis, a publish sent to the hung Redis would get that answer after the resume, from a
   * node that gave up on it, and would never be applied. These tests are about one that is.
   */
  @BeforeEach
  void start() throws Exception {
    redis = TestRedis.start();
    Map<String, String> env = redis.serverEnv();
    env.put("SWITCHBOARD_REDIS__COMMAND_TIMEOUT", "200ms");
    env.put("SWITCHBOARD_REDIS__HEALTH_INTERVAL", "100ms");
    server = TestServer.start(env);
    HttpApi api = new HttpApi(server);
    api.awaitReady();
    api.publish("warm-up", "loads the scripts");
  }

  @AfterEach
  void stop() {
    redis.resume();
    try {
      for (Client c : clients) {
        c.close();
      }
    } finally {
      try {
        server.close();
      } finally {
        redis.close();
      }
    }
  }

  @Test
  void publishIsRetriedWithItsKeyWhileRedisHangsAndDeliveredOnce() throws Exception {
    // Ten retries: at least 200 ms each while Redis hangs, they outlast the pause whatever the
    // jitter (the default three may all be spent by the resume on a slow machine).
    Client alice = connect("alice", b -> b.publishRetries(10));
    Client bob = connect("bob", b -> {});
    Await.result(alice.join("orders"));
    Recorder orders = new Recorder();
    ServerTest.join(bob, "orders", orders);

    CompletableFuture<PublishReply> publish;
    redis.pause();
    try {
      // The first attempt reaches the hung Redis: OUTCOME_UNKNOWN after 200 ms. The retries
      // (UNAVAILABLE while the node waits for Redis) go on until one finds Redis back, and the
      // first attempt applied.
      publish = alice.publish("orders", "paid");
      Await.sleep(700);
      assertFalse(publish.isDone(), "the publish ended while Redis hung");
    } finally {
      redis.resume();
    }
    PublishReply ack = Await.result(publish);
    assertTrue(ack.getDuplicate(), "the ack is the first attempt's: " + ack);
    assertEquals(1, ack.getOffset());
    Message paid = orders.next();
    assertEquals(Arrays.asList(1L, "paid", "alice"),
        Arrays.asList(paid.getOffset(), paid.getText(), paid.getSender()));
    orders.assertNoMessage(Duration.ofMillis(500));
  }

  @Test
  void withoutRetriesAnUnknownOutcomeCarriesTheKeyToPublishAgainWith() throws Exception {
    Client alice = connect("alice", b -> b.publishRetries(0));
    Client bob = connect("bob", b -> {});
    Await.result(alice.join("orders"));
    Recorder orders = new Recorder();
    ServerTest.join(bob, "orders", orders);

    ServerException unknown;
    redis.pause();
    try {
      unknown = Await.failure(alice.publish("orders", "paid"), ServerException.class);
    } finally {
      redis.resume();
    }
    assertEquals(ErrorCode.ERROR_CODE_OUTCOME_UNKNOWN, unknown.getCode());
    assertTrue(unknown.isTemporary());
    String key = unknown.getIdempotencyKey();
    assertTrue(GENERATED_KEY.matcher(key).matches(), key);

    new HttpApi(server).awaitReady();
    PublishReply ack = Await.result(alice.publish("orders", Content.text("paid"), key));
    assertTrue(ack.getDuplicate(), "the ack is the first attempt's: " + ack);
    assertEquals(1, ack.getOffset());
    Message paid = orders.next();
    assertEquals(Arrays.asList(1L, "paid"), Arrays.asList(paid.getOffset(), paid.getText()));
    orders.assertNoMessage(Duration.ofMillis(500));
  }

  @Test
  void retriesStopWhenThePublishIsCancelledOrTheClientCloses() throws Exception {
    Client alice = connect("alice", b -> b.publishRetries(1000));
    Await.result(alice.join("orders"));
    redis.pause();

    CompletableFuture<PublishReply> cancelled = alice.publish("orders", "cancelled");
    Await.sleep(800);
    assertFalse(cancelled.isDone());
    assertTrue(cancelled.cancel(false));
    // Neither an attempt in flight nor a delay is left, and none comes back.
    Await.until("the cancelled publish lets go", () -> alice.busyForTesting() == 0);
    Await.sleep(500);
    assertEquals(0, alice.busyForTesting());

    CompletableFuture<PublishReply> closing = alice.publish("orders", "closed");
    Await.sleep(800);
    assertFalse(closing.isDone());
    alice.close();
    ConnectionClosedException closed = Await.failure(closing, ConnectionClosedException.class);
    assertTrue(GENERATED_KEY.matcher(closed.getIdempotencyKey()).matches());
    Await.until("alice's threads end",
        () -> alice.threadsForTesting().stream().noneMatch(Thread::isAlive));
  }

  private Client connect(String name, Consumer<ClientOptions.Builder> options) {
    ClientOptions.Builder builder = ClientOptions.builder().name(name);
    options.accept(builder);
    Client client = Await.result(Client.connect(server.url, builder.build()));
    clients.add(client);
    return client;
  }
}
