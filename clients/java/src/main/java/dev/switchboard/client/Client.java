package dev.switchboard.client;

import dev.switchboard.v1.ClientFrame;
import dev.switchboard.v1.ConnectReply;
import dev.switchboard.v1.ConnectRequest;
import dev.switchboard.v1.DirectReply;
import dev.switchboard.v1.DirectRequest;
import dev.switchboard.v1.Disconnect;
import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.HistoryReply;
import dev.switchboard.v1.HistoryRequest;
import dev.switchboard.v1.JoinReply;
import dev.switchboard.v1.JoinRequest;
import dev.switchboard.v1.LeaveRequest;
import dev.switchboard.v1.Member;
import dev.switchboard.v1.PingReply;
import dev.switchboard.v1.PingRequest;
import dev.switchboard.v1.PresenceRequest;
import dev.switchboard.v1.PublishReply;
import dev.switchboard.v1.PublishRequest;
import dev.switchboard.v1.RefreshReply;
import dev.switchboard.v1.RefreshRequest;
import dev.switchboard.v1.RoomMessage;
import dev.switchboard.v1.ServerFrame;
import dev.switchboard.v1.StreamPosition;
import dev.switchboard.v1.Subscribed;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.logging.Level;
import java.util.logging.Logger;
import okhttp3.Dispatcher;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.Response;
import okhttp3.WebSocket;
import okhttp3.WebSocketListener;
import okio.ByteString;

/**
 * A Switchboard connection that reconnects on its own.
 *
 * <pre>{@code
 * Client client = Client.connect("ws://127.0.0.1:8080/ws",
 *     ClientOptions.builder().name("alice").build()).join();
 * Subscription lobby = client.join("lobby", JoinOptions.builder()
 *     .listener(new SubscriptionListener() {
 *       public void onMessage(Message m) { System.out.println(m.getSender() + ": " + m.getText()); }
 *     }).build()).join();
 * client.publish("lobby", "hello").join();
 * client.close();
 * }</pre>
 *
 * <p>Every command returns a {@link CompletableFuture} that completes with the reply, or
 * exceptionally with a {@link SwitchboardException}: {@link ServerException} (the server
 * refused), {@link CommandTimeoutException}, {@link ConnectionClosedException} or {@link
 * ConnectionLostException}. Each command has a timeout (the client's {@code commandTimeout}
 * unless overridden) that covers waiting for the connection too.
 *
 * <h2>Threads</h2>
 *
 * <p>Futures complete, and listeners are called, on the client's callback executor: one call at
 * a time, in order, never on the thread that reads the socket (see {@link
 * ClientOptions.Builder#callbackExecutor}). Do not block that thread waiting for the client
 * (e.g. {@code publish(...).join()} inside a listener): the reply could only be delivered on the
 * thread you are blocking. Chain with {@code thenAccept} and friends instead. The client's own
 * threads are daemons and end when it is closed.
 *
 * <h2>Reconnects</h2>
 *
 * <p>When the connection drops, the client reconnects with full-jitter backoff, authenticates
 * again, rejoins every subscribed room (those a backend subscribed it to as well) with {@code
 * since} = the last position it delivered, and only then is {@link ConnectionState#CONNECTED}
 * again. Offsets at or below the last one
 * delivered are dropped, so nothing arrives twice. Commands issued meanwhile wait; commands in
 * flight are sent again when that is safe ({@code join}, {@code leave}, {@code history}, {@code
 * presence}, {@code ping}, {@code refresh}, and {@code publish} with the app's own idempotency
 * key) and fail with {@link ConnectionLostException} otherwise. Close codes decide: see {@link
 * CloseCodes}.
 *
 * <h2>Publishing safely</h2>
 *
 * <p>Every publish carries an idempotency key: the app's, or 32 random hex characters the client
 * generates for the call. A publish the server answers with {@code ERROR_CODE_UNAVAILABLE} (not
 * carried out) or {@code ERROR_CODE_OUTCOME_UNKNOWN} (the broker may have applied it) is sent
 * again with the same key, after a full-jitter delay (100 ms doubling up to 2 s), up to {@link
 * ClientOptions.Builder#publishRetries} times; an attempt that was applied makes every later one
 * return its acknowledgement with {@code duplicate} set, and the message is delivered once. Every
 * error a publish fails with carries its key ({@link SwitchboardException#getIdempotencyKey()}),
 * to publish again with when the outcome is unknown.
 *
 * <h2>Server-side subscriptions</h2>
 *
 * <p>A backend can subscribe every connection of a user to a room through the HTTP API ({@code
 * PUT /api/v1/users/{user}/rooms/{room}}). The client then creates that room's {@link
 * Subscription} itself, as {@link #join(String)} would (no listener: read it with {@link
 * Subscription#messages()}), starting at the position the server pushed, and hands it to {@link
 * ClientListener#onSubscribed}. It behaves like any other: dedupe by offset, the bounded buffer,
 * typed payloads, {@link Subscription#leave()}, and a rejoin with {@code since} after every
 * reconnect (the server forgets server-side memberships when a connection drops). When the
 * backend unsubscribes the user ({@code DELETE}), the subscription ends as after a leave, and the
 * room can be joined again. A room the client has joined itself keeps its subscription and is not
 * announced.
 *
 * <h2>Tokens</h2>
 *
 * <p>Every reconnect logs in with the token given to {@link ClientOptions}, or the last one a
 * {@link #refresh} succeeded with. When the token expires without a refresh the server closes
 * with 1008 and the client ends.
 */
public final class Client implements AutoCloseable {
  /** The binary protobuf subprotocol; the only one this SDK speaks. */
  public static final String SUBPROTOCOL = "switchboard.v1.proto";

  private static final Logger LOG = Logger.getLogger("dev.switchboard.client");
  // How long closing waits for the server's Close frame before dropping the socket.
  private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(2);
  // How long an idle callback thread lingers: long while open (no thread churn
  // between bursts), short once closed (so it ends promptly).
  private static final long CALLBACK_IDLE_OPEN_MS = 30_000;
  private static final long CALLBACK_IDLE_CLOSED_MS = 1;
  // State changes kept for a listener that blocks its thread (the oldest go first).
  private static final int MAX_QUEUED_STATE_CHANGES = 64;
  private static final AtomicInteger CLIENT_SERIALS = new AtomicInteger();

  /** Guards every mutable field of the client, its connections, calls and subscriptions. */
  final Object lock = new Object();
  /** Decodes received payloads. */
  final TypeRegistry types;
  /** Runs every app-facing callback, in order. */
  final SerialExecutor callbacks;

  private final String url;
  private final Request request;
  private final Duration commandTimeout;
  private final Backoff backoff;
  private final int bufferSize;
  private final int maxInFlight;
  /** How many times a publish is sent again after UNAVAILABLE or OUTCOME_UNKNOWN. */
  private final int publishRetries;
  private final ClientListener listener;
  /** Numbers this client's threads. */
  private final int serial;
  /** Threads this client created, for tests that check none outlive it. */
  private final List<Thread> threads = Collections.synchronizedList(new ArrayList<>());
  /** Command timeouts, reconnect delays. Runs no app code. */
  private final ScheduledThreadPoolExecutor timer;
  /** The default callback thread (null when the app gave an executor). */
  private final ThreadPoolExecutor callbackPool;
  /** OkHttp's dispatcher threads: each connection's reader runs on one. */
  private final ThreadPoolExecutor ioPool;
  private final OkHttpClient http;
  /** Whether {@link #http}'s connection pool is ours to empty on close. */
  private final boolean ownsHttp;

  // Guarded by `lock`.
  private ConnectionState state = ConnectionState.CONNECTING;
  /** The READY connection, or null. */
  private Connection current;
  /** The connection being opened (dial, connect, rejoin), or null. */
  private Connection handshake;
  private int connectionSerials;
  /** Connections whose socket OkHttp has not finished with yet. */
  private int liveSockets;
  /** close() was called: nothing reconnects any more. */
  private boolean closing;
  /** The CLOSED change, once closed. */
  private StateChange finalChange;
  /** Joined rooms, rejoined after every reconnect. */
  private final Map<String, Subscription> subs = new LinkedHashMap<>();
  /** Accepted commands waiting for the connection, oldest first. */
  private final ArrayDeque<Call> waiting = new ArrayDeque<>();
  /** Commands waiting for an in-flight slot. */
  private final ArrayDeque<Call> slotWaiters = new ArrayDeque<>();
  /** Publishes waiting out the delay before their next attempt, with its timer. */
  private final Map<RetryingPublish, ScheduledFuture<?>> delayedPublishes = new HashMap<>();
  private int slotsInUse;
  private long callSeqs;
  /** Reconnect attempts since the last successful connection. */
  private int attempt;
  private ScheduledFuture<?> reconnectTimer;
  /** Sent by every connection's {@code connect}; a successful refresh replaces its token. */
  private ConnectRequest credentials;
  /** The last connection's login, its expiry updated by every successful refresh. */
  private ConnectReply connectReply = ConnectReply.getDefaultInstance();
  private final ClientEvents events = new ClientEvents();

  /** Completes (on the callback executor) when the first connection is ready. */
  private final CompletableFuture<Client> connected = new CompletableFuture<>();
  /** Completes (on the callback executor) with the CLOSED change. */
  private final CompletableFuture<StateChange> closed = new CompletableFuture<>();
  /** Completes (on an SDK thread) once CLOSED and every socket is finished. */
  private final CompletableFuture<Void> socketsDone = new CompletableFuture<>();

  private Client(String url, Request request, ClientOptions options) {
    this.url = url;
    this.request = request;
    this.credentials =
        ConnectRequest.newBuilder().setToken(options.getToken()).setName(options.getName()).build();
    this.types = options.getTypes();
    this.commandTimeout = options.getCommandTimeout();
    this.backoff = options.getBackoff();
    this.bufferSize = options.getBufferSize();
    this.maxInFlight = options.getMaxInFlight();
    this.publishRetries = options.getPublishRetries();
    this.listener = options.getListener();
    this.serial = CLIENT_SERIALS.incrementAndGet();

    timer = new ScheduledThreadPoolExecutor(1, threadFactory("timer"));
    timer.setRemoveOnCancelPolicy(true);
    timer.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
    Executor target = options.getCallbackExecutor();
    if (target == null) {
      callbackPool = new ThreadPoolExecutor(0, 1, CALLBACK_IDLE_OPEN_MS, TimeUnit.MILLISECONDS,
          new LinkedBlockingQueue<>(), threadFactory("callbacks"));
      target = callbackPool;
    } else {
      callbackPool = null;
    }
    callbacks = new SerialExecutor(target);
    ioPool = new ThreadPoolExecutor(0, Integer.MAX_VALUE, 60, TimeUnit.SECONDS,
        new SynchronousQueue<>(), threadFactory("io"));

    OkHttpClient base = options.getOkHttpClient();
    ownsHttp = base == null;
    long timeoutMs = commandTimeout.toMillis();
    http = (base != null ? base.newBuilder() : new OkHttpClient.Builder())
        .dispatcher(new Dispatcher(ioPool))
        .connectTimeout(timeoutMs, TimeUnit.MILLISECONDS)
        .readTimeout(timeoutMs, TimeUnit.MILLISECONDS) // the upgrade only
        .writeTimeout(timeoutMs, TimeUnit.MILLISECONDS)
        .pingInterval(options.getPingInterval().toMillis(), TimeUnit.MILLISECONDS)
        .webSocketCloseTimeout(CLOSE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
        .build();
  }

  /**
   * Connects to a Switchboard server. The returned future completes once the connection is open
   * and authenticated, or fails with {@link ServerException} if the login is refused, {@link
   * ConnectionClosedException} if the server cannot be reached, {@link CommandTimeoutException}
   * if it does not answer: the first connection is not retried. After that, the client
   * reconnects on its own. Cancelling the future closes the client.
   *
   * @param url e.g. "ws://127.0.0.1:8080/ws" (or "wss://...")
   * @param options credentials and options; see {@link ClientOptions}
   * @return the connected client
   * @throws IllegalArgumentException if the URL is not a ws, wss, http or https URL
   */
  public static CompletableFuture<Client> connect(String url, ClientOptions options) {
    Objects.requireNonNull(url, "url");
    Objects.requireNonNull(options, "options");
    Request request =
        new Request.Builder().url(url).header("Sec-WebSocket-Protocol", SUBPROTOCOL).build();
    Client client = new Client(url, request, options);
    client.start();
    CompletableFuture<Client> result = client.connected;
    result.whenComplete((c, e) -> {
      if (result.isCancelled()) {
        client.closeAsync();
      }
    });
    return result;
  }

  // Properties.

  /**
   * The current connection state.
   *
   * @return the state
   */
  public ConnectionState getState() {
    synchronized (lock) {
      return state;
    }
  }

  /**
   * Whether the client is closed for good.
   *
   * @return true once {@link ConnectionState#CLOSED}
   */
  public boolean isClosed() {
    return getState() == ConnectionState.CLOSED;
  }

  /**
   * The authenticated user id, from the server.
   *
   * @return the user id
   */
  public String getUser() {
    synchronized (lock) {
      return connectReply.getUser();
    }
  }

  /**
   * The server's id of the current connection; it changes on every reconnect.
   *
   * @return the connection id
   */
  public String getClientId() {
    synchronized (lock) {
      return connectReply.getClient();
    }
  }

  /**
   * When the token in use expires, as the server reported it at login and after every {@link
   * #refresh}. Refresh before then: a connection whose token expires is closed with 1008.
   *
   * @return milliseconds since the Unix epoch; 0 when the token does not expire, or there is none
   *     (a development login by name)
   */
  public long getExpiresAtMs() {
    synchronized (lock) {
      return connectReply.getExpiresAtMs();
    }
  }

  /**
   * The registered payload types.
   *
   * @return the registry
   */
  public TypeRegistry getTypes() {
    return types;
  }

  /**
   * Completes when the client is closed for good, with the final change (its code, reason and
   * error say why).
   *
   * @return a future of the CLOSED change
   */
  public CompletableFuture<StateChange> closed() {
    return closed.thenApply(Function.identity());
  }

  // Commands.

  /**
   * Joins a room; its messages arrive through {@link Subscription#messages()}.
   *
   * @param room the room's name
   * @return the subscription, once the server confirmed
   */
  public CompletableFuture<Subscription> join(String room) {
    return join(room, JoinOptions.DEFAULT);
  }

  /**
   * Joins a room.
   *
   * <p>With {@link JoinOptions.Builder#since}, the messages after that position are delivered
   * first when the server still has them ({@link Subscription#getRecovered()} says whether it
   * did). Joining a room twice (or a room a backend subscribed this connection to, see {@link
   * ClientListener#onSubscribed}) fails with {@code ERROR_CODE_ALREADY_JOINED} and leaves the
   * first subscription intact.
   *
   * @param room the room's name
   * @param options recovery position, presence events, listener, timeout
   * @return the subscription, once the server confirmed
   */
  public CompletableFuture<Subscription> join(String room, JoinOptions options) {
    Objects.requireNonNull(room, "room");
    Objects.requireNonNull(options, "options");
    Subscription sub = new Subscription(this, room, options, bufferSize);
    StreamPosition since = options.getSince();
    JoinRequest.Builder join =
        JoinRequest.newBuilder().setRoom(room).setPresenceEvents(options.getPresenceEvents());
    if (since != null) {
      join.setSince(since);
    }
    ClientFrame frame = ClientFrame.newBuilder().setJoin(join).build();
    return command("join", ServerFrame.KindCase.JOIN, frame, true, options.getTimeout(),
        reply -> {
          // Runs before any later frame: no live message can overtake the join.
          subs.put(room, sub);
          sub.joined(reply.getJoin(), since);
        },
        reply -> sub);
  }

  /**
   * Leaves a room (as {@link Subscription#leave()} does).
   *
   * @param room the room's name
   * @return completes when the server confirmed
   */
  public CompletableFuture<Void> leave(String room) {
    return leave(room, null);
  }

  /**
   * Leaves a room, with a timeout.
   *
   * @param room the room's name
   * @param timeout overrides the command timeout; null for the default
   * @return completes when the server confirmed
   */
  public CompletableFuture<Void> leave(String room, Duration timeout) {
    Subscription sub;
    synchronized (lock) {
      sub = subs.get(room);
    }
    if (sub != null) {
      return leaveSubscription(sub, timeout);
    }
    ClientFrame frame =
        ClientFrame.newBuilder().setLeave(LeaveRequest.newBuilder().setRoom(room)).build();
    return command("leave", ServerFrame.KindCase.LEAVE, frame, true, timeout, null, r -> null);
  }

  /**
   * Publishes text to a joined room.
   *
   * @param room the room's name
   * @param text the text
   * @return the acknowledgement (offset, epoch, id, timestamp, duplicate)
   */
  public CompletableFuture<PublishReply> publish(String room, String text) {
    return publish(room, Content.text(text), PublishOptions.DEFAULT);
  }

  /**
   * Publishes a typed application message (its bytes plus its full type name) to a joined room.
   * A {@link dev.switchboard.v1.Payload} is sent as it is.
   *
   * @param room the room's name
   * @param value a generated message, e.g. a {@code ChatMessage}
   * @return the acknowledgement
   */
  public CompletableFuture<PublishReply> publish(String room, com.google.protobuf.Message value) {
    return publish(room, Content.of(value), PublishOptions.DEFAULT);
  }

  /**
   * Publishes to a joined room.
   *
   * @param room the room's name
   * @param content what to publish
   * @return the acknowledgement
   */
  public CompletableFuture<PublishReply> publish(String room, Content content) {
    return publish(room, content, PublishOptions.DEFAULT);
  }

  /**
   * Publishes to a joined room with the app's own idempotency key: a retry with the same key is
   * delivered once, and a publish cut off by a lost connection is sent again after the reconnect.
   *
   * @param room the room's name
   * @param content what to publish
   * @param idempotencyKey at most 256 bytes; null or empty to have the client generate one
   * @return the acknowledgement ({@code duplicate} set when the key was used before)
   */
  public CompletableFuture<PublishReply> publish(
      String room, Content content, String idempotencyKey) {
    return publish(room, content, PublishOptions.builder().idempotencyKey(idempotencyKey).build());
  }

  /**
   * Publishes to a joined room. The publisher receives its own message like every member.
   *
   * <p>The publish carries the idempotency key of {@code options} or, without one, a key the
   * client generates for this call (32 random lowercase hex characters). When the server answers
   * {@code ERROR_CODE_UNAVAILABLE} or {@code ERROR_CODE_OUTCOME_UNKNOWN}, the client sends it again
   * with the same key after a full-jitter delay (100 ms doubling up to 2 s), up to {@link
   * ClientOptions.Builder#publishRetries} times; if an earlier attempt was applied, the
   * acknowledgement is that attempt's, with {@code duplicate} set, and the message is delivered
   * once. Each attempt has its own timeout. Other errors, timeouts and lost connections are not
   * retried here; a publish in flight when the connection drops is sent again after the reconnect
   * only with the app's own key, and fails with {@link ConnectionLostException} otherwise.
   *
   * <p>Every error the future fails with carries the key ({@link
   * SwitchboardException#getIdempotencyKey()}). When it fails with {@code
   * ERROR_CODE_OUTCOME_UNKNOWN}, a {@link CommandTimeoutException} or a {@link
   * ConnectionLostException}, the message may or may not have been published: publish it again
   * with that key, which delivers it at most once. An UNAVAILABLE that follows an OUTCOME_UNKNOWN
   * is reported as the OUTCOME_UNKNOWN (the earlier attempt may have been applied). Cancelling
   * the future, or closing the client, stops the retries.
   *
   * @param room the room's name
   * @param content what to publish
   * @param options idempotency key and timeout
   * @return the acknowledgement
   */
  public CompletableFuture<PublishReply> publish(
      String room, Content content, PublishOptions options) {
    Objects.requireNonNull(room, "room");
    Objects.requireNonNull(content, "content");
    Objects.requireNonNull(options, "options");
    PublishRequest.Builder publish = PublishRequest.newBuilder()
        .setRoom(room)
        .setPayload(content.getPayload())
        .setIdempotencyKey(options.getIdempotencyKey());
    return new RetryingPublish(this, publish, options.getTimeout(), publishRetries).start();
  }

  /**
   * Sends text to every connection of a user.
   *
   * @param user the recipient's user id
   * @param text the text
   * @return the reply (the message id); succeeds, delivering nothing, when the user is offline
   */
  public CompletableFuture<DirectReply> direct(String user, String text) {
    return direct(user, Content.text(text), null);
  }

  /**
   * Sends a typed application message to every connection of a user.
   *
   * @param user the recipient's user id
   * @param value a generated message
   * @return the reply (the message id)
   */
  public CompletableFuture<DirectReply> direct(String user, com.google.protobuf.Message value) {
    return direct(user, Content.of(value), null);
  }

  /**
   * Sends to every connection of a user.
   *
   * @param user the recipient's user id
   * @param content what to send
   * @return the reply (the message id)
   */
  public CompletableFuture<DirectReply> direct(String user, Content content) {
    return direct(user, content, null);
  }

  /**
   * Sends to every connection of a user. Never sent twice: if the connection drops while it is
   * in flight, it fails with {@link ConnectionLostException}.
   *
   * @param user the recipient's user id
   * @param content what to send
   * @param timeout overrides the command timeout; null for the default
   * @return the reply (the message id)
   */
  public CompletableFuture<DirectReply> direct(String user, Content content, Duration timeout) {
    Objects.requireNonNull(user, "user");
    Objects.requireNonNull(content, "content");
    DirectRequest direct =
        DirectRequest.newBuilder().setUser(user).setPayload(content.getPayload()).build();
    ClientFrame frame = ClientFrame.newBuilder().setDirect(direct).build();
    return command("direct", ServerFrame.KindCase.DIRECT, frame, false, timeout, null,
        ServerFrame::getDirect);
  }

  /**
   * Reads the newest page of a room's history (joining is not required).
   *
   * @param room the room's name
   * @return the page
   */
  public CompletableFuture<HistoryPage> history(String room) {
    return history(room, HistoryOptions.DEFAULT);
  }

  /**
   * Reads a page of a room's history (joining is not required); see {@link HistoryOptions} for
   * paging backwards and forwards.
   *
   * @param room the room's name
   * @param options limit, before, after, timeout
   * @return the page
   */
  public CompletableFuture<HistoryPage> history(String room, HistoryOptions options) {
    Objects.requireNonNull(room, "room");
    Objects.requireNonNull(options, "options");
    HistoryRequest history = HistoryRequest.newBuilder()
        .setRoom(room)
        .setLimit(options.getLimit())
        .setBefore(options.getBefore())
        .setAfter(options.getAfter())
        .build();
    ClientFrame frame = ClientFrame.newBuilder().setHistory(history).build();
    return command("history", ServerFrame.KindCase.HISTORY, frame, true, options.getTimeout(),
        null, reply -> page(reply.getHistory()));
  }

  /**
   * Lists the connections present in a room (joining is not required).
   *
   * @param room the room's name
   * @return one member per connection, in no particular order
   */
  public CompletableFuture<List<Member>> presence(String room) {
    return presence(room, null);
  }

  /**
   * Lists the connections present in a room, with a timeout.
   *
   * @param room the room's name
   * @param timeout overrides the command timeout; null for the default
   * @return one member per connection, in no particular order
   */
  public CompletableFuture<List<Member>> presence(String room, Duration timeout) {
    Objects.requireNonNull(room, "room");
    ClientFrame frame =
        ClientFrame.newBuilder().setPresence(PresenceRequest.newBuilder().setRoom(room)).build();
    return command("presence", ServerFrame.KindCase.PRESENCE, frame, true, timeout, null,
        reply -> reply.getPresence().getMembersList());
  }

  /**
   * Measures a round trip to the server.
   *
   * @return the reply, with the server's time
   */
  public CompletableFuture<PingReply> ping() {
    ClientFrame frame = ClientFrame.newBuilder().setPing(PingRequest.getDefaultInstance()).build();
    return command("ping", ServerFrame.KindCase.PING, frame, true, null, null,
        ServerFrame::getPing);
  }

  /**
   * Replaces the connection's token before it expires (see {@link #getExpiresAtMs()}).
   *
   * @param token the new JWT, for the same user
   * @return the reply, with the new token's expiry
   * @see #refresh(String, Duration)
   */
  public CompletableFuture<RefreshReply> refresh(String token) {
    return refresh(token, null);
  }

  /**
   * Replaces the connection's token before it expires (see {@link #getExpiresAtMs()}). The new
   * token must be valid and name the same user; its expiry (and room grants) replace the old
   * ones, and the connection carries on untouched. Once the server has accepted it, every later
   * reconnect logs in with it instead of the token given to {@link ClientOptions}.
   *
   * <p>A token the server refuses (invalid, already expired, or another user's) fails the future
   * with a {@link ServerException} ({@code ERROR_CODE_UNAUTHORIZED} or {@code
   * ERROR_CODE_TOKEN_EXPIRED}), and the server then closes the connection with 1008: the client
   * ends ({@link ConnectionState#CLOSED}, no reconnect). A refresh in flight when the connection
   * drops is sent again after the reconnect, which logs in with the last token the server
   * accepted: refresh early enough that this one is still valid then.
   *
   * @param token the new JWT, for the same user
   * @param timeout overrides the command timeout; null for the default
   * @return the reply: {@code expiresAtMs}, the new token's expiry in milliseconds since the Unix
   *     epoch (0 if it does not expire)
   */
  public CompletableFuture<RefreshReply> refresh(String token, Duration timeout) {
    Objects.requireNonNull(token, "token");
    ClientFrame frame =
        ClientFrame.newBuilder().setRefresh(RefreshRequest.newBuilder().setToken(token)).build();
    return command("refresh", ServerFrame.KindCase.REFRESH, frame, true, timeout,
        reply -> {
          // Before any later frame: a reconnect after this reply logs in with the new token.
          credentials = credentials.toBuilder().setToken(token).build();
          connectReply = connectReply.toBuilder()
              .setExpiresAtMs(reply.getRefresh().getExpiresAtMs())
              .build();
        },
        ServerFrame::getRefresh);
  }

  /**
   * Closes the client for good (WebSocket close 1000) and waits, a few seconds at most, for the
   * close handshake and the client's threads to end. Subscriptions end once their buffers are
   * delivered; waiting commands fail with {@link ConnectionClosedException}. Idempotent. Called
   * from a callback, it does not wait for the callback thread.
   */
  @Override
  public void close() {
    beginClose();
    long deadline = System.nanoTime() + CLOSE_TIMEOUT.toNanos() + TimeUnit.SECONDS.toNanos(1);
    try {
      socketsDone.get(remaining(deadline), TimeUnit.NANOSECONDS);
      timer.awaitTermination(remaining(deadline), TimeUnit.NANOSECONDS);
      ioPool.awaitTermination(remaining(deadline), TimeUnit.NANOSECONDS);
      if (callbackPool != null && !callbacks.inCallback()) {
        // The callback thread ends once it has delivered what is queued.
        while (callbackPool.getPoolSize() > 0 && remaining(deadline) > 0) {
          Thread.sleep(2);
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (TimeoutException e) {
      LOG.log(Level.FINE, "switchboard: the socket did not close in time");
    } catch (ExecutionException e) {
      LOG.log(Level.FINE, "switchboard: close failed", e);
    }
  }

  /**
   * Closes the client for good without waiting (see {@link #close()}).
   *
   * @return completes once the close handshake is over
   */
  public CompletableFuture<Void> closeAsync() {
    beginClose();
    return socketsDone.thenRunAsync(() -> {}, callbacks);
  }

  @Override
  public String toString() {
    return "Client(" + url + ", " + getState() + ")";
  }

  // Test hooks, not API.

  /**
   * Aborts the TCP connection without a close handshake, as a network failure would, so tests
   * can exercise the reconnect, rejoin-with-since and dedupe path against a real server.
   */
  void dropConnectionForTesting() {
    synchronized (lock) {
      if (current != null && current.alive) {
        current.ws.cancel();
      }
    }
  }

  /** Feeds a frame to the dispatcher as if the current connection had received it. */
  void receiveForTesting(ServerFrame frame) {
    synchronized (lock) {
      if (current != null) {
        dispatch(current, frame);
      }
    }
  }

  /** Commands holding an in-flight slot, plus publishes waiting out a retry delay. */
  int busyForTesting() {
    synchronized (lock) {
      return slotsInUse + delayedPublishes.size();
    }
  }

  /** Every thread this client started (live or not). */
  List<Thread> threadsForTesting() {
    synchronized (threads) {
      return new ArrayList<>(threads);
    }
  }

  // Commands, underneath.

  CompletableFuture<Void> leaveSubscription(Subscription sub, Duration timeout) {
    boolean send;
    synchronized (lock) {
      if (subs.get(sub.getRoom()) == sub) {
        subs.remove(sub.getRoom());
      }
      boolean wasActive = sub.activeLocked();
      sub.end(null);
      // Not joined on a live connection: it will not be rejoined either.
      send = wasActive && state == ConnectionState.CONNECTED;
    }
    if (!send) {
      return CompletableFuture.completedFuture(null);
    }
    ClientFrame frame = ClientFrame.newBuilder()
        .setLeave(LeaveRequest.newBuilder().setRoom(sub.getRoom()))
        .build();
    CompletableFuture<Void> leave =
        command("leave", ServerFrame.KindCase.LEAVE, frame, false, timeout, null, r -> null);
    return leave.handle((ok, failure) -> {
      Throwable e = failure instanceof CompletionException ? failure.getCause() : failure;
      if (e == null
          || e instanceof ConnectionLostException
          || e instanceof ConnectionClosedException
          || (e instanceof ServerException
              && ((ServerException) e).getCode() == ErrorCode.ERROR_CODE_NOT_JOINED)) {
        return null; // the room is left either way
      }
      throw e instanceof CompletionException ? (CompletionException) e : new CompletionException(e);
    });
  }

  /** One attempt of a {@link RetryingPublish}; {@code resend}: again after a lost connection. */
  CompletableFuture<PublishReply> publishAttempt(
      ClientFrame frame, boolean resend, Duration timeout) {
    return command("publish", ServerFrame.KindCase.PUBLISH, frame, resend, timeout, null,
        ServerFrame::getPublish);
  }

  /**
   * Sends {@code publish}'s next attempt, on the callback executor, after {@code delay}; a close
   * before then fails it instead.
   *
   * @return false when the client is closed
   */
  boolean retryLater(RetryingPublish publish, Duration delay) {
    synchronized (lock) {
      if (state == ConnectionState.CLOSED) {
        return false;
      }
      ScheduledFuture<?> timer = schedule(delay, () -> {
        synchronized (lock) {
          if (delayedPublishes.remove(publish) == null) {
            return; // cancelled, or failed by the close
          }
        }
        callbacks.execute(publish::send);
      });
      if (timer == null) {
        return false;
      }
      delayedPublishes.put(publish, timer);
      return true;
    }
  }

  /** Forgets the delay of a cancelled publish. */
  void cancelRetry(RetryingPublish publish) {
    synchronized (lock) {
      ScheduledFuture<?> timer = delayedPublishes.remove(publish);
      if (timer != null) {
        timer.cancel(false);
      }
    }
  }

  private <T> CompletableFuture<T> command(
      String name,
      ServerFrame.KindCase expected,
      ClientFrame frame,
      boolean retry,
      Duration timeout,
      Consumer<ServerFrame> onReply,
      Function<ServerFrame, T> map) {
    Duration limit = timeout != null ? timeout : commandTimeout;
    CompletableFuture<T> future = new CompletableFuture<>();
    SwitchboardException refused = null;
    UserCall<T> call;
    synchronized (lock) {
      call = new UserCall<>(name, expected, frame, retry, limit, ++callSeqs, future, onReply, map);
      if (state == ConnectionState.CLOSED) {
        refused = closedError();
      } else if (slotsInUse < maxInFlight) {
        call.timer = schedule(limit, () -> timedOut(call));
        admit(call);
      } else if (slotWaiters.size() < maxInFlight) {
        call.timer = schedule(limit, () -> timedOut(call));
        slotWaiters.add(call);
      } else {
        refused = new SwitchboardException(
            name + " refused: " + (2 * maxInFlight) + " commands already waiting or in flight");
      }
      if (refused != null) {
        call.done = true;
      }
    }
    if (refused != null) {
      future.completeExceptionally(refused);
      return future;
    }
    future.whenComplete((v, e) -> {
      if (future.isCancelled()) {
        cancelled(call);
      }
    });
    return future;
  }

  /** Takes an in-flight slot; sends now when connected, else waits for the connection. */
  private void admit(Call call) {
    call.holdsSlot = true;
    slotsInUse++;
    if (state == ConnectionState.CONNECTED && current != null && current.alive) {
      send(current, call);
    } else {
      waiting.add(call);
    }
  }

  private void send(Connection conn, Call call) {
    int id = conn.register(call);
    byte[] bytes = call.frame.toBuilder().setId(id).build().toByteArray();
    // false: the socket is failing or closing; its end settles the call.
    conn.ws.send(ByteString.of(bytes));
  }

  private void sendHandshake(Connection conn, HandshakeCall call) {
    call.timer = schedule(call.timeout, () -> timedOut(call));
    send(conn, call);
  }

  private void settleSucceeded(Call call, ServerFrame reply) {
    settle(call);
    call.succeeded(reply);
  }

  private void settleFailed(Call call, SwitchboardException error) {
    settle(call);
    call.failed(error);
  }

  private void settle(Call call) {
    call.done = true;
    if (call.timer != null) {
      call.timer.cancel(false);
    }
    if (call.holdsSlot) {
      call.holdsSlot = false;
      slotsInUse--;
      while (slotsInUse < maxInFlight && !slotWaiters.isEmpty()) {
        admit(slotWaiters.pollFirst());
      }
    }
  }

  private void timedOut(Call call) {
    synchronized (lock) {
      if (detach(call)) {
        settleFailed(call, new CommandTimeoutException(call.command, call.timeout));
      }
    }
  }

  private void cancelled(Call call) {
    synchronized (lock) {
      if (detach(call)) {
        settle(call);
      }
    }
  }

  /**
   * Removes an unfinished call from every queue and from its connection (under {@code lock}).
   * Returns false when the call was already done.
   */
  private boolean detach(Call call) {
    if (call.done) {
      return false;
    }
    waiting.remove(call);
    slotWaiters.remove(call);
    if (call.connection != null) {
      call.connection.forget(call);
    }
    return true;
  }

  private HistoryPage page(HistoryReply reply) {
    List<Message> messages = new ArrayList<>(reply.getMessagesCount());
    for (RoomMessage m : reply.getMessagesList()) {
      messages.add(Message.of(m, types));
    }
    return new HistoryPage(
        Collections.unmodifiableList(messages), reply.getPosition(), reply.getHasMore());
  }

  // The connection's life. Every method below runs with `lock` held.

  private void start() {
    synchronized (lock) {
      emit(StateChange.of(ConnectionState.CONNECTING));
      openConnection();
    }
  }

  private void openConnection() {
    Connection conn = new Connection(++connectionSerials);
    handshake = conn;
    liveSockets++;
    conn.dialTimer = schedule(commandTimeout, () -> {
      synchronized (lock) {
        if (conn.alive && !conn.opened) {
          abandon(conn, new CommandTimeoutException("connect", commandTimeout));
        }
      }
    });
    conn.ws = http.newWebSocket(request, new SocketListener(conn));
  }

  private void opened(Connection conn, Response response) {
    if (!conn.alive) {
      return;
    }
    conn.opened = true;
    if (conn.dialTimer != null) {
      conn.dialTimer.cancel(false);
    }
    if (conn != handshake || state == ConnectionState.CLOSED) {
      abandon(conn, closedError());
      return;
    }
    String subprotocol = response.header("Sec-WebSocket-Protocol");
    if (!SUBPROTOCOL.equals(subprotocol)) {
      abandon(conn, new SwitchboardException(
          "server did not accept subprotocol " + SUBPROTOCOL + " (got " + subprotocol + ")"));
      return;
    }
    conn.phase = Connection.Phase.AUTHENTICATING;
    ClientFrame frame = ClientFrame.newBuilder().setConnect(credentials).build();
    sendHandshake(conn, new HandshakeCall("connect", ServerFrame.KindCase.CONNECT, frame) {
      @Override
      void succeeded(ServerFrame reply) {
        authenticated(conn, reply.getConnect());
      }

      @Override
      void failed(SwitchboardException error) {
        abandon(conn, error);
      }
    });
  }

  private void authenticated(Connection conn, ConnectReply reply) {
    connectReply = reply;
    conn.phase = Connection.Phase.REJOINING;
    List<Subscription> rooms = new ArrayList<>(subs.values());
    conn.rejoinsPending = rooms.size();
    for (Subscription sub : rooms) {
      conn.rejoining.add(sub.getRoom());
      ClientFrame frame = ClientFrame.newBuilder().setJoin(sub.rejoinRequest()).build();
      sendHandshake(conn, new HandshakeCall("join", ServerFrame.KindCase.JOIN, frame) {
        @Override
        void succeeded(ServerFrame reply) {
          rejoined(conn, sub, reply.getJoin());
        }

        @Override
        void failed(SwitchboardException error) {
          rejoinFailed(conn, sub, error);
        }
      });
    }
    if (rooms.isEmpty()) {
      ready(conn);
    }
  }

  /** A rejoin succeeded; {@code reply} is null when a backend had joined the room already. */
  private void rejoined(Connection conn, Subscription sub, JoinReply reply) {
    conn.rejoining.remove(sub.getRoom());
    if (subs.get(sub.getRoom()) == sub) {
      if (reply != null) {
        sub.rejoined(reply);
      }
    } else {
      // Left while it was being rejoined: leave it on this connection too.
      ClientFrame leave = ClientFrame.newBuilder()
          .setLeave(LeaveRequest.newBuilder().setRoom(sub.getRoom()))
          .build();
      sendHandshake(conn, new HandshakeCall("leave", ServerFrame.KindCase.LEAVE, leave) {
        @Override
        void succeeded(ServerFrame ignored) {}

        @Override
        void failed(SwitchboardException ignored) {}
      });
    }
    if (--conn.rejoinsPending == 0) {
      ready(conn);
    }
  }

  private void rejoinFailed(Connection conn, Subscription sub, SwitchboardException error) {
    if (error instanceof ServerException
        && ((ServerException) error).getCode() == ErrorCode.ERROR_CODE_ALREADY_JOINED) {
      // A backend subscribed this connection to the room first: it is a member, live from the
      // position of that Subscribed push (see subscribed()).
      rejoined(conn, sub, null);
      return;
    }
    conn.rejoining.remove(sub.getRoom());
    if (error instanceof ServerException && !((ServerException) error).isTemporary()) {
      // This room cannot be rejoined (e.g. access was revoked); the others can.
      LOG.log(Level.WARNING, "switchboard: cannot rejoin {0}: {1}",
          new Object[] {sub.getRoom(), error.getMessage()});
      if (subs.get(sub.getRoom()) == sub) {
        subs.remove(sub.getRoom());
      }
      sub.end(error);
      if (--conn.rejoinsPending == 0) {
        ready(conn);
      }
      return;
    }
    abandon(conn, error);
  }

  private void ready(Connection conn) {
    if (!conn.alive) {
      return; // its end decides what happens next
    }
    handshake = null;
    current = conn;
    conn.phase = Connection.Phase.READY;
    attempt = 0;
    boolean first = !connected.isDone() && state == ConnectionState.CONNECTING;
    emit(StateChange.of(ConnectionState.CONNECTED));
    while (!waiting.isEmpty()) {
      send(conn, waiting.pollFirst());
    }
    if (first) {
      callbacks.execute(() -> connected.complete(this));
    }
  }

  /** Gives up on a connection during its handshake; its end decides what comes next. */
  private void abandon(Connection conn, SwitchboardException error) {
    if (conn.abandonError == null) {
      conn.abandonError = error;
    }
    if (conn.ws != null) {
      conn.ws.cancel();
    }
  }

  private void dispatch(Connection conn, ServerFrame frame) {
    if (!conn.alive) {
      return;
    }
    ServerFrame.KindCase kind = frame.getKindCase();
    if (frame.getId() != 0) {
      Call call = conn.pending.remove(frame.getId());
      if (call == null || call.done) {
        return; // it timed out or was cancelled
      }
      if (kind == ServerFrame.KindCase.ERROR) {
        settleFailed(call, new ServerException(frame.getError(), call.command));
      } else if (kind != call.expected) {
        settleFailed(call, new SwitchboardException(call.command + " got a " + kind + " reply"));
      } else {
        settleSucceeded(call, frame);
      }
      return;
    }
    if (state == ConnectionState.CLOSED) {
      return; // closing: nobody reads pushes any more
    }
    Subscription sub;
    switch (kind) {
      case MESSAGE:
        sub = subs.get(frame.getMessage().getRoom());
        if (sub != null) {
          sub.deliver(frame.getMessage());
        }
        break;
      case MEMBER_JOINED:
        sub = subs.get(frame.getMemberJoined().getRoom());
        if (sub != null) {
          sub.event(frame.getMemberJoined());
        }
        break;
      case MEMBER_LEFT:
        sub = subs.get(frame.getMemberLeft().getRoom());
        if (sub != null) {
          sub.event(frame.getMemberLeft());
        }
        break;
      case SUBSCRIBED:
        subscribed(conn, frame.getSubscribed());
        break;
      case UNSUBSCRIBED:
        sub = subs.remove(frame.getUnsubscribed().getRoom());
        if (sub != null) {
          sub.end(null); // as after a leave
        }
        break;
      case DIRECT_MESSAGE:
        events.add(DirectMessage.of(frame.getDirectMessage(), types));
        break;
      case NOTIFICATION:
        Notification n = Notification.of(frame.getNotification(), types);
        sub = n.getRoom().isEmpty() ? null : subs.get(n.getRoom());
        if (sub != null && sub.hasListener()) {
          sub.event(n);
        } else {
          events.add(n);
        }
        break;
      case DISCONNECT:
        conn.disconnect = frame.getDisconnect();
        break;
      case ERROR:
        LOG.log(Level.WARNING, "switchboard: the server rejected a frame: {0}",
            frame.getError().getMessage());
        break;
      default:
        break; // a push kind from a newer protocol: ignored
    }
  }

  /**
   * A backend subscribed this connection to a room: a new subscription, announced to the app, or
   * the one the client already has for the room.
   */
  private void subscribed(Connection conn, Subscribed pushed) {
    String room = pushed.getRoom();
    Subscription sub = subs.get(room);
    if (sub != null) {
      if (conn.rejoining.contains(room)) {
        // Its rejoin on this new connection comes too late and will be refused as already
        // joined: live messages resume after the pushed position.
        sub.resubscribed(pushed.getPosition());
      }
      return; // the app's own join, or announced already: keep it, announce nothing
    }
    // Rejoins after a reconnect ask for presence events when the backend did.
    JoinOptions options =
        pushed.getPresenceEvents()
            ? JoinOptions.builder().presenceEvents(true).build()
            : JoinOptions.DEFAULT;
    sub = new Subscription(this, room, options, bufferSize);
    sub.subscribed(pushed.getPosition());
    subs.put(room, sub);
    events.add(sub);
  }

  /**
   * A connection ended (Close frame received, or the socket failed): settle what was in flight,
   * then reconnect, or close the client for good.
   *
   * @param code the close code; 1006 for a socket that failed after opening; null for one that
   *     never opened
   */
  private void ended(Connection conn, Integer code, String reason) {
    if (!conn.alive) {
      return;
    }
    conn.alive = false;
    if (conn.dialTimer != null) {
      conn.dialTimer.cancel(false);
    }
    List<Call> again = new ArrayList<>();
    for (Call call : conn.drainPending()) {
      if (call.done) {
        continue;
      }
      if (call.isHandshake()) {
        settle(call); // the handshake's failure is handled below
      } else if (state == ConnectionState.CLOSED) {
        settleFailed(call, closedError());
      } else if (call.retry) {
        call.connection = null;
        again.add(call);
      } else {
        settleFailed(call, new ConnectionLostException(call.command));
      }
    }
    for (int i = again.size() - 1; i >= 0; i--) {
      waiting.addFirst(again.get(i));
    }
    if (state == ConnectionState.CLOSED) {
      return;
    }

    Integer effectiveCode = code;
    String effectiveReason = reason;
    boolean reconnect = CloseCodes.shouldReconnect(code);
    Disconnect disconnect = conn.disconnect;
    if (disconnect != null) {
      if (disconnect.getCode() != 0) {
        effectiveCode = disconnect.getCode();
      }
      if (!disconnect.getReason().isEmpty()) {
        effectiveReason = disconnect.getReason();
      }
      reconnect = disconnect.getReconnect();
    }

    if (conn == handshake) {
      handshake = null;
      SwitchboardException error = conn.abandonError;
      Integer closeCode = error == null ? effectiveCode : null;
      if (error == null) {
        error = code == null
            ? new ConnectionClosedException(null, "cannot connect to " + url + ": " + reason)
            : new ConnectionClosedException(effectiveCode, effectiveReason);
      }
      if (state == ConnectionState.CONNECTING) {
        finish(closeCode, error.getMessage(), error); // the first connection is not retried
        return;
      }
      if (error instanceof ServerException && !((ServerException) error).isTemporary()) {
        finish(null, error.getMessage(), error); // e.g. the token expired: retrying cannot help
        return;
      }
      if (conn.abandonError == null && !reconnect) {
        finish(effectiveCode, effectiveReason, error);
        return;
      }
      LOG.log(Level.FINE, "switchboard: reconnect attempt {0} failed on {1}: {2}",
          new Object[] {attempt, conn, error.getMessage()});
      scheduleReconnect(closeCode, error.getMessage());
      return;
    }
    if (conn == current) {
      current = null;
      if (!reconnect) {
        finish(effectiveCode, effectiveReason,
            new ConnectionClosedException(effectiveCode, effectiveReason));
        return;
      }
      scheduleReconnect(effectiveCode, effectiveReason);
    }
  }

  private void socketFinished(Connection conn) {
    if (!conn.ioFinished) {
      conn.ioFinished = true;
      liveSockets--;
      checkSocketsDone();
    }
  }

  private void checkSocketsDone() {
    if (state == ConnectionState.CLOSED && liveSockets == 0 && !socketsDone.isDone()) {
      if (ownsHttp) {
        http.connectionPool().evictAll();
      }
      socketsDone.complete(null);
    }
  }

  private void scheduleReconnect(Integer code, String reason) {
    Duration delay = backoff.delay(attempt);
    attempt++;
    emit(new StateChange(ConnectionState.RECONNECTING, code, reason, attempt, delay, null));
    reconnectTimer = schedule(delay, () -> {
      synchronized (lock) {
        if (state != ConnectionState.CLOSED && handshake == null && current == null) {
          openConnection();
        }
      }
    });
  }

  private void beginClose() {
    synchronized (lock) {
      if (closing || state == ConnectionState.CLOSED) {
        return;
      }
      closing = true;
      Connection conn = current;
      finish(1000, "client closed", null);
      if (conn != null && conn.alive) {
        conn.ws.close(1000, "client closed");
      }
    }
  }

  /** Enters CLOSED for good: fails waiting commands, ends subscriptions, stops the threads. */
  private void finish(Integer code, String reason, SwitchboardException error) {
    if (state == ConnectionState.CLOSED) {
      return;
    }
    StateChange change =
        new StateChange(ConnectionState.CLOSED, code, reason, 0, Duration.ZERO, error);
    finalChange = change;
    if (reconnectTimer != null) {
      reconnectTimer.cancel(false);
    }
    SwitchboardException closedError = closedError();
    List<Call> failing = new ArrayList<>(waiting);
    failing.addAll(slotWaiters);
    waiting.clear();
    slotWaiters.clear();
    for (Connection conn : new Connection[] {current, handshake}) {
      if (conn != null) {
        failing.addAll(conn.drainPending());
      }
    }
    for (Call call : failing) {
      if (!call.done) {
        call.holdsSlot = false; // no slot is handed on any more
        settleFailed(call, closedError()); // one each: a publish's error gets its key
      }
    }
    for (Map.Entry<RetryingPublish, ScheduledFuture<?>> delayed : delayedPublishes.entrySet()) {
      delayed.getValue().cancel(false);
      RetryingPublish publish = delayed.getKey();
      SwitchboardException publishError = closedError();
      callbacks.execute(() -> publish.fail(publishError));
    }
    delayedPublishes.clear();
    SwitchboardException endError = closing ? null : closedError;
    for (Subscription sub : subs.values()) {
      sub.end(endError);
    }
    subs.clear();
    emit(change);
    if (handshake != null) {
      abandon(handshake, closedError);
    }
    SwitchboardException connectError = error != null ? error : closedError;
    callbacks.execute(() -> {
      connected.completeExceptionally(connectError);
      closed.complete(change);
    });
    timer.shutdown();
    ioPool.shutdown();
    if (callbackPool != null) {
      callbackPool.setKeepAliveTime(CALLBACK_IDLE_CLOSED_MS, TimeUnit.MILLISECONDS);
    }
    checkSocketsDone();
  }

  /** Why no command can run: a new instance each time (see {@link SwitchboardException}). */
  SwitchboardException closedError() {
    StateChange f = finalChange;
    if (f == null) {
      return new ConnectionClosedException(null, "client closed");
    }
    return new ConnectionClosedException(f.getCode(), f.getReason(), f.getError());
  }

  private void emit(StateChange change) {
    state = change.getState();
    events.add(change);
  }

  private ScheduledFuture<?> schedule(Duration delay, Runnable task) {
    try {
      return timer.schedule(task, delay.toNanos(), TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException e) {
      return null; // closed: nothing needs timing any more
    }
  }

  private static long remaining(long deadline) {
    return Math.max(0, deadline - System.nanoTime());
  }

  private ThreadFactory threadFactory(String role) {
    AtomicInteger count = new AtomicInteger();
    return task -> {
      String name = "switchboard-" + serial + "-" + role;
      if (role.equals("io")) {
        name += "-" + count.incrementAndGet();
      }
      Thread thread = new Thread(task, name);
      thread.setDaemon(true);
      synchronized (threads) {
        threads.removeIf(t -> t.getState() == Thread.State.TERMINATED);
        threads.add(thread);
      }
      return thread;
    };
  }

  /** A command sent by the app: completes its future on the callback executor. */
  private final class UserCall<T> extends Call {
    private final CompletableFuture<T> future;
    /** Runs with the lock held, before any later frame is dispatched. */
    private final Consumer<ServerFrame> onReply;
    private final Function<ServerFrame, T> map;

    UserCall(
        String command,
        ServerFrame.KindCase expected,
        ClientFrame frame,
        boolean retry,
        Duration timeout,
        long seq,
        CompletableFuture<T> future,
        Consumer<ServerFrame> onReply,
        Function<ServerFrame, T> map) {
      super(command, expected, frame, retry, timeout, seq);
      this.future = future;
      this.onReply = onReply;
      this.map = map;
    }

    @Override
    void succeeded(ServerFrame reply) {
      if (onReply != null) {
        onReply.accept(reply);
      }
      T value = map.apply(reply);
      callbacks.execute(() -> future.complete(value));
    }

    @Override
    void failed(SwitchboardException error) {
      callbacks.execute(() -> future.completeExceptionally(error));
    }
  }

  /** A command of a connection's handshake: its outcome drives the handshake. */
  private abstract class HandshakeCall extends Call {
    HandshakeCall(String command, ServerFrame.KindCase expected, ClientFrame frame) {
      super(command, expected, frame, false, commandTimeout, 0);
    }

    @Override
    boolean isHandshake() {
      return true;
    }
  }

  /** OkHttp's callbacks for one connection, on its reader thread. */
  private final class SocketListener extends WebSocketListener {
    private final Connection conn;

    SocketListener(Connection conn) {
      this.conn = conn;
    }

    @Override
    public void onOpen(WebSocket webSocket, Response response) {
      synchronized (lock) {
        opened(conn, response);
      }
    }

    @Override
    public void onMessage(WebSocket webSocket, ByteString bytes) {
      ServerFrame frame;
      try {
        frame = ServerFrame.parseFrom(bytes.asByteBuffer());
      } catch (com.google.protobuf.InvalidProtocolBufferException e) {
        LOG.log(Level.WARNING, "switchboard: ignoring an undecodable frame", e);
        return;
      }
      synchronized (lock) {
        try {
          dispatch(conn, frame);
        } catch (RuntimeException e) {
          LOG.log(Level.SEVERE, "switchboard: dispatch failed; dropping the connection", e);
          webSocket.cancel();
        }
      }
    }

    @Override
    public void onMessage(WebSocket webSocket, String text) {
      LOG.warning("switchboard: ignoring a text frame on the binary protocol");
    }

    @Override
    public void onClosing(WebSocket webSocket, int code, String reason) {
      // Complete the close handshake; OkHttp reports onClosed once it is written.
      webSocket.close(1000, null);
      synchronized (lock) {
        ended(conn, code, reason);
      }
    }

    @Override
    public void onClosed(WebSocket webSocket, int code, String reason) {
      synchronized (lock) {
        ended(conn, code, reason);
        socketFinished(conn);
      }
    }

    @Override
    public void onFailure(WebSocket webSocket, Throwable t, Response response) {
      String reason = response != null
          ? "HTTP " + response.code() + " " + response.message()
          : String.valueOf(t);
      synchronized (lock) {
        ended(conn, conn.opened ? CloseCodes.ABNORMAL_CLOSURE : null, reason);
        socketFinished(conn);
      }
    }
  }

  /**
   * The client-level events waiting for the app's {@link ClientListener}, in arrival order.
   * Bounded: {@code bufferSize} direct messages and as many notifications (the oldest are dropped
   * when full), and {@link #MAX_QUEUED_STATE_CHANGES} state changes. Server-side subscriptions
   * are never dropped: the app must learn of every one (the server bounds them per connection).
   */
  private final class ClientEvents {
    private static final int BATCH = 64;
    /** Guarded by `lock`. */
    private final ArrayDeque<Object> queue = new ArrayDeque<>();
    private int directs;
    private int notifications;
    private int stateChanges;
    private boolean draining;

    /**
     * Queues a state change, direct message, notification or server-side subscription. Lock
     * held.
     */
    void add(Object item) {
      if (listener == null) {
        return;
      }
      Class<?> kind = item.getClass();
      int limit = kind == StateChange.class ? MAX_QUEUED_STATE_CHANGES : bufferSize;
      if (kind != Subscription.class && count(kind) >= limit) {
        for (Iterator<Object> it = queue.iterator(); it.hasNext(); ) {
          if (it.next().getClass() == kind) {
            it.remove();
            adjust(kind, -1);
            break;
          }
        }
      }
      queue.add(item);
      adjust(kind, 1);
      if (!draining) {
        draining = true;
        callbacks.execute(this::drain);
      }
    }

    private int count(Class<?> kind) {
      if (kind == DirectMessage.class) {
        return directs;
      }
      return kind == Notification.class ? notifications : stateChanges;
    }

    /** Counts what is bounded; subscriptions are not. */
    private void adjust(Class<?> kind, int delta) {
      if (kind == DirectMessage.class) {
        directs += delta;
      } else if (kind == Notification.class) {
        notifications += delta;
      } else if (kind == StateChange.class) {
        stateChanges += delta;
      }
    }

    private void drain() {
      for (int i = 0; i < BATCH; i++) {
        Object item;
        synchronized (lock) {
          item = queue.pollFirst();
          if (item == null) {
            draining = false;
            return;
          }
          adjust(item.getClass(), -1);
        }
        try {
          if (item instanceof StateChange) {
            listener.onStateChange((StateChange) item);
          } else if (item instanceof DirectMessage) {
            listener.onDirectMessage((DirectMessage) item);
          } else if (item instanceof Subscription) {
            listener.onSubscribed((Subscription) item);
          } else {
            listener.onNotification((Notification) item);
          }
        } catch (RuntimeException | Error e) {
          LOG.log(Level.WARNING, "switchboard: a client listener threw", e);
        }
      }
      callbacks.execute(this::drain);
    }
  }
}
