package dev.switchboard.client;

import com.google.protobuf.Message;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.Executor;
import okhttp3.OkHttpClient;

/**
 * Options of {@link Client#connect(String, ClientOptions)}. Immutable; build with {@link
 * #builder()}.
 *
 * <pre>{@code
 * ClientOptions options = ClientOptions.builder()
 *     .token(jwt)                                   // or .name("alice") on a development server
 *     .types(ChatMessage.getDefaultInstance())      // decode these payload types
 *     .listener(new ClientListener() { ... })       // state changes, direct messages, ...
 *     .build();
 * }</pre>
 */
public final class ClientOptions {
  /** Default {@link Builder#commandTimeout}: 10 s. */
  public static final Duration DEFAULT_COMMAND_TIMEOUT = Duration.ofSeconds(10);
  /** Default {@link Builder#bufferSize}: 1024. */
  public static final int DEFAULT_BUFFER_SIZE = 1024;
  /** Default {@link Builder#maxInFlight}: 1024. */
  public static final int DEFAULT_MAX_IN_FLIGHT = 1024;
  /** Default {@link Builder#pingInterval}: 20 s. */
  public static final Duration DEFAULT_PING_INTERVAL = Duration.ofSeconds(20);
  /** Default {@link Builder#publishRetries}: 3. */
  public static final int DEFAULT_PUBLISH_RETRIES = 3;

  private final String token;
  private final String name;
  private final TypeRegistry types;
  private final Duration commandTimeout;
  private final Backoff backoff;
  private final int bufferSize;
  private final int maxInFlight;
  private final ClientListener listener;
  private final Executor callbackExecutor;
  private final OkHttpClient okHttpClient;
  private final Duration pingInterval;
  private final int publishRetries;

  private ClientOptions(Builder b) {
    this.token = b.token;
    this.name = b.name;
    this.types = b.types;
    this.commandTimeout = b.commandTimeout;
    this.backoff = b.backoff;
    this.bufferSize = b.bufferSize;
    this.maxInFlight = b.maxInFlight;
    this.listener = b.listener;
    this.callbackExecutor = b.callbackExecutor;
    this.okHttpClient = b.okHttpClient;
    this.pingInterval = b.pingInterval;
    this.publishRetries = b.publishRetries;
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
   * The JWT sent with {@code connect}.
   *
   * @return the token, empty when none
   */
  public String getToken() {
    return token;
  }

  /**
   * The development-mode user name.
   *
   * @return the name, empty when none
   */
  public String getName() {
    return name;
  }

  /**
   * The payload types decoded on receipt.
   *
   * @return the registry
   */
  public TypeRegistry getTypes() {
    return types;
  }

  /**
   * The default timeout of every command.
   *
   * @return the timeout
   */
  public Duration getCommandTimeout() {
    return commandTimeout;
  }

  /**
   * The reconnect delays.
   *
   * @return the backoff
   */
  public Backoff getBackoff() {
    return backoff;
  }

  /**
   * The bound of every receive buffer.
   *
   * @return the size
   */
  public int getBufferSize() {
    return bufferSize;
  }

  /**
   * How many commands may be in flight (or waiting for the connection) at once.
   *
   * @return the bound
   */
  public int getMaxInFlight() {
    return maxInFlight;
  }

  /**
   * The client's listener.
   *
   * @return the listener, or null
   */
  public ClientListener getListener() {
    return listener;
  }

  /**
   * Where callbacks run.
   *
   * @return the executor, or null for the client's own thread
   */
  public Executor getCallbackExecutor() {
    return callbackExecutor;
  }

  /**
   * The OkHttp client the connection is derived from.
   *
   * @return the client, or null for a private one
   */
  public OkHttpClient getOkHttpClient() {
    return okHttpClient;
  }

  /**
   * How often the client pings the server.
   *
   * @return the interval; zero when disabled
   */
  public Duration getPingInterval() {
    return pingInterval;
  }

  /**
   * How many times a publish is sent again after {@code ERROR_CODE_UNAVAILABLE} or {@code
   * ERROR_CODE_OUTCOME_UNKNOWN}.
   *
   * @return the number of retries; 0 when they are off
   */
  public int getPublishRetries() {
    return publishRetries;
  }

  /** Builds {@link ClientOptions}. */
  public static final class Builder {
    private String token = "";
    private String name = "";
    private TypeRegistry types = TypeRegistry.EMPTY;
    private Duration commandTimeout = DEFAULT_COMMAND_TIMEOUT;
    private Backoff backoff = Backoff.DEFAULT;
    private int bufferSize = DEFAULT_BUFFER_SIZE;
    private int maxInFlight = DEFAULT_MAX_IN_FLIGHT;
    private ClientListener listener;
    private Executor callbackExecutor;
    private OkHttpClient okHttpClient;
    private Duration pingInterval = DEFAULT_PING_INTERVAL;
    private int publishRetries = DEFAULT_PUBLISH_RETRIES;

    private Builder() {}

    /**
     * Authenticates with a JWT signed with the server's key; its {@code sub} claim is the user
     * id. It is sent again on every reconnect; when it expires the server closes with 1008 and
     * the client is closed for good.
     *
     * @param token the JWT
     * @return this builder
     */
    public Builder token(String token) {
      this.token = Objects.requireNonNull(token, "token");
      return this;
    }

    /**
     * Connects as an anonymous user of this name. Development-mode servers only.
     *
     * @param name the user id to take
     * @return this builder
     */
    public Builder name(String name) {
      this.name = Objects.requireNonNull(name, "name");
      return this;
    }

    /**
     * Generated message classes to decode typed payloads into, given by any instance (e.g.
     * {@code ChatMessage.getDefaultInstance()}). Adds to the types registered so far.
     *
     * @param types instances of the classes
     * @return this builder
     */
    public Builder types(Message... types) {
      this.types = this.types.with(types);
      return this;
    }

    /**
     * Replaces the registered payload types.
     *
     * @param types the registry
     * @return this builder
     */
    public Builder types(TypeRegistry types) {
      this.types = Objects.requireNonNull(types, "types");
      return this;
    }

    /**
     * How long each command (and each connection attempt) may take, including time spent
     * waiting for the connection to come back. Default 10 s.
     *
     * @param timeout positive
     * @return this builder
     */
    public Builder commandTimeout(Duration timeout) {
      this.commandTimeout = Durations.positive(timeout, "commandTimeout");
      return this;
    }

    /**
     * Reconnect delays. Default {@link Backoff#DEFAULT} (full jitter, 0.5 s to 20 s).
     *
     * @param backoff the backoff
     * @return this builder
     */
    public Builder backoff(Backoff backoff) {
      this.backoff = Objects.requireNonNull(backoff, "backoff");
      return this;
    }

    /**
     * The bound of every receive buffer: each subscription's undelivered messages (newer ones
     * are dropped and a {@link Gap} marks the spot) and its presence events, and the client's
     * direct messages and notifications (the oldest are dropped). Default 1024.
     *
     * @param size at least 1
     * @return this builder
     */
    public Builder bufferSize(int size) {
      if (size < 1) {
        throw new IllegalArgumentException("bufferSize must be at least 1, got " + size);
      }
      this.bufferSize = size;
      return this;
    }

    /**
     * How many commands may be in flight or waiting for the connection at once. As many more
     * wait for a slot (within their timeout); beyond that, commands fail at once. Default 1024.
     *
     * @param max at least 1
     * @return this builder
     */
    public Builder maxInFlight(int max) {
      if (max < 1) {
        throw new IllegalArgumentException("maxInFlight must be at least 1, got " + max);
      }
      this.maxInFlight = max;
      return this;
    }

    /**
     * Receives state changes, direct messages, notifications and server-side subscriptions
     * ({@link ClientListener#onSubscribed}), from the first {@code CONNECTING} on.
     *
     * @param listener the listener
     * @return this builder
     */
    public Builder listener(ClientListener listener) {
      this.listener = listener;
      return this;
    }

    /**
     * Where listener calls and future completions run; on Android, e.g., the main thread's
     * executor. The client never runs two of its callbacks at once on it, and keeps their
     * order. Default: one daemon thread per client, which ends when the client is closed and
     * idle.
     *
     * <p>The executor must run tasks on another thread, not inline inside {@code execute} (no
     * "direct" executor): the client hands it work while reading the socket. Keep it running
     * until the client is closed and its {@link Client#closed()} future has completed.
     *
     * @param executor the executor; the client does not shut it down
     * @return this builder
     */
    public Builder callbackExecutor(Executor executor) {
      this.callbackExecutor = executor;
      return this;
    }

    /**
     * An OkHttp client to derive the connection from (sharing its connection pool, TLS, proxy
     * and interceptor settings). The client still uses its own dispatcher, so its threads end
     * when it is closed. Default: a private client.
     *
     * @param client the base client
     * @return this builder
     */
    public Builder okHttpClient(OkHttpClient client) {
      this.okHttpClient = client;
      return this;
    }

    /**
     * How often to ping the server; a ping without a pong by the next one drops the connection
     * (and the client reconnects). Default 20 s; zero disables pings.
     *
     * @param interval zero or positive
     * @return this builder
     */
    public Builder pingInterval(Duration interval) {
      if (interval == null || interval.isNegative()) {
        throw new IllegalArgumentException("pingInterval must be zero or positive");
      }
      this.pingInterval = interval;
      return this;
    }

    /**
     * How many times a publish answered with {@code ERROR_CODE_UNAVAILABLE} (not carried out) or
     * {@code ERROR_CODE_OUTCOME_UNKNOWN} (the broker may have applied it) is sent again, with the
     * same idempotency key, after a full-jitter delay (100 ms doubling up to 2 s). Each attempt has
     * its own command timeout. Default 3; 0 turns the retries off (the publish then fails with the
     * error, which carries the key to publish again with). See {@link Client#publish(String,
     * Content, PublishOptions)}.
     *
     * @param retries zero or more
     * @return this builder
     */
    public Builder publishRetries(int retries) {
      if (retries < 0) {
        throw new IllegalArgumentException("publishRetries must be zero or more, got " + retries);
      }
      this.publishRetries = retries;
      return this;
    }

    /**
     * The options.
     *
     * @return immutable options
     */
    public ClientOptions build() {
      return new ClientOptions(this);
    }
  }
}
