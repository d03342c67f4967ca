package dev.switchboard.client;

import com.example.chat.v1.ChatMessage;
import com.example.chat.v1.TypingEvent;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import dev.switchboard.testing.v1.ExpectPush;
import dev.switchboard.testing.v1.Scenario;
import dev.switchboard.testing.v1.Step;
import dev.switchboard.v1.ErrorCode;
import dev.switchboard.v1.Member;
import dev.switchboard.v1.MemberJoined;
import dev.switchboard.v1.MemberLeft;
import dev.switchboard.v1.Payload;
import dev.switchboard.v1.PublishReply;
import dev.switchboard.v1.RoomMessage;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;

/**
 * Replays a conformance scenario through the SDK's public API against a live server, with the
 * rules of {@code proto/switchboard/testing/v1/scenario.proto}. Only {@code drop_connection}
 * uses an internal hook ({@link Client#dropConnectionForTesting()}), so recovery must come from
 * the SDK's own reconnect. After a drop, the client's next step waits until it is connected
 * again, its rooms rejoined (as in the Rust runner), while other clients act during the outage.
 */
final class ScenarioRunner {
  static final TypeRegistry REGISTRY =
      TypeRegistry.of(ChatMessage.getDefaultInstance(), TypingEvent.getDefaultInstance());
  static final Duration DEFAULT_PUSH_TIMEOUT = Duration.ofMillis(5000);
  static final Duration DEFAULT_NO_PUSH_WAIT = Duration.ofMillis(300);
  // Far more pushes than any scenario sends: a bound, not a limit in practice.
  private static final int STREAM_BOUND = 10_000;

  /** A step did not go as the scenario says. */
  static final class ScenarioFailure extends AssertionError {
    private static final long serialVersionUID = 1L;

    ScenarioFailure(String message) {
      super(message);
    }

    ScenarioFailure(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private final String url;
  private final Map<String, Actor> actors = new LinkedHashMap<>();

  ScenarioRunner(String url) {
    this.url = url;
  }

  /** Runs {@code scenario}; {@code raw} is its JSON, for the key-presence matching rule. */
  void run(Scenario scenario, JsonObject raw) {
    JsonArray rawSteps = raw.getAsJsonArray("steps");
    if (rawSteps.size() != scenario.getStepsCount()) {
      throw new ScenarioFailure("the JSON and the parsed scenario disagree on the steps");
    }
    try {
      for (int i = 0; i < scenario.getStepsCount(); i++) {
        Step step = scenario.getSteps(i);
        if (step.getActionCase() == Step.ActionCase.ACTION_NOT_SET) {
          throw new ScenarioFailure("step " + i + " has no action");
        }
        FieldDescriptor action = Step.getDescriptor().findFieldByNumber(
            step.getActionCase().getNumber());
        JsonObject rawAction = get(rawSteps.get(i).getAsJsonObject(), action).getAsJsonObject();
        try {
          Actor actor = actors.get(step.getClient());
          if (actor != null) {
            actor.awaitReconnect();
          }
          step(step, rawAction);
        } catch (ScenarioFailure | RuntimeException e) {
          throw new ScenarioFailure(scenario.getName() + ": step " + i + " (" + step.getClient()
              + " " + action.getName() + "): " + e.getMessage(), e);
        }
      }
    } finally {
      for (Actor actor : actors.values()) {
        actor.client.close();
      }
    }
    for (Actor actor : actors.values()) {
      if (!actor.errors.isEmpty()) {
        throw new ScenarioFailure(actor.alias + ": " + actor.errors.get(0));
      }
      if (actor.client.threadsForTesting().stream().anyMatch(Thread::isAlive)) {
        Await.until(actor.alias + "'s threads end",
            () -> actor.client.threadsForTesting().stream().noneMatch(Thread::isAlive));
      }
    }
  }

  private void step(Step step, JsonObject raw) {
    switch (step.getActionCase()) {
      case CONNECT:
        connect(step);
        break;
      case JOIN:
        join(step);
        break;
      case LEAVE: {
        ServerException error = serverError(actor(step).client.leave(step.getLeave().getRoom()));
        expectError(step.getLeave().getExpectError(), "leave", error);
        break;
      }
      case PUBLISH:
        publish(step);
        break;
      case DIRECT: {
        CompletableFuture<?> sent = actor(step).client.direct(
            step.getDirect().getUser(), contentOf(step.getDirect().getPayload()));
        expectError(step.getDirect().getExpectError(), "direct", serverError(sent));
        break;
      }
      case HISTORY:
        history(step, raw);
        break;
      case PRESENCE:
        presence(step);
        break;
      case EXPECT_PUSH:
        expectPush(step, raw);
        break;
      case EXPECT_NO_PUSH:
        expectNoPush(step);
        break;
      case DROP_CONNECTION:
        actor(step).dropConnection();
        break;
      case CLOSE:
        actor(step).client.close();
        break;
      default:
        throw new ScenarioFailure("unknown action " + step.getActionCase());
    }
  }

  private Actor actor(Step step) {
    Actor actor = actors.get(step.getClient());
    if (actor == null) {
      throw new ScenarioFailure("client " + step.getClient() + " acts before its connect step");
    }
    return actor;
  }

  private void connect(Step step) {
    Actor actor = new Actor(step.getClient());
    ClientOptions options = ClientOptions.builder()
        .name(step.getConnect().getName())
        .types(REGISTRY)
        .listener(actor)
        .build();
    CompletableFuture<Client> connecting = Client.connect(url, options);
    ServerException error = serverError(connecting);
    expectError(step.getConnect().getExpectError(), "connect", error);
    if (error == null) {
      actor.client = connecting.join();
      Actor previous = actors.put(step.getClient(), actor);
      if (previous != null) {
        previous.client.close();
      }
    }
  }

  private void join(Step step) {
    dev.switchboard.testing.v1.Join join = step.getJoin();
    Actor actor = actor(step);
    JoinOptions.Builder options = JoinOptions.builder()
        .presenceEvents(join.getPresenceEvents())
        .listener(actor.listenerFor(join.getRoom()));
    if (join.hasSince()) {
      options.since(join.getSince());
    }
    CompletableFuture<Subscription> joining = actor.client.join(join.getRoom(), options.build());
    ServerException error = serverError(joining);
    expectError(join.getExpectError(), "join", error);
    if (error != null) {
      return;
    }
    Subscription sub = joining.join();
    if (join.hasExpectRecovered()
        && !Boolean.valueOf(join.getExpectRecovered()).equals(sub.getRecovered())) {
      throw new ScenarioFailure(
          "recovered = " + sub.getRecovered() + ", expected " + join.getExpectRecovered());
    }
  }

  private void publish(Step step) {
    dev.switchboard.testing.v1.Publish publish = step.getPublish();
    CompletableFuture<PublishReply> ack = actor(step).client.publish(publish.getRoom(),
        contentOf(publish.getPayload()), publish.getIdempotencyKey());
    ServerException error = serverError(ack);
    expectError(publish.getExpectError(), "publish", error);
    if (error != null) {
      return;
    }
    PublishReply reply = ack.join();
    if (publish.getExpectOffset() != 0 && reply.getOffset() != publish.getExpectOffset()) {
      throw new ScenarioFailure("ack offset " + Long.toUnsignedString(reply.getOffset())
          + ", expected " + Long.toUnsignedString(publish.getExpectOffset()));
    }
    if (reply.getDuplicate() != publish.getExpectDuplicate()) {
      throw new ScenarioFailure("ack duplicate = " + reply.getDuplicate() + ", expected "
          + publish.getExpectDuplicate());
    }
  }

  private void history(Step step, JsonObject raw) {
    dev.switchboard.testing.v1.History history = step.getHistory();
    CompletableFuture<HistoryPage> read = actor(step).client.history(history.getRoom(),
        HistoryOptions.builder()
            .limit(history.getLimit())
            .before(history.getBefore())
            .after(history.getAfter())
            .build());
    ServerException error = serverError(read);
    expectError(history.getExpectError(), "history", error);
    if (error != null) {
      return;
    }
    HistoryPage page = read.join();
    JsonElement expected = get(raw, dev.switchboard.testing.v1.History.getDescriptor()
        .findFieldByNumber(dev.switchboard.testing.v1.History.EXPECT_MESSAGES_FIELD_NUMBER));
    JsonArray want = expected == null ? new JsonArray() : expected.getAsJsonArray();
    if (page.getMessages().size() != want.size()) {
      throw new ScenarioFailure("history returned " + page.getMessages().size()
          + " messages (offsets " + ClientTest.offsets(page.getMessages()) + "), expected "
          + want.size());
    }
    for (int i = 0; i < want.size(); i++) {
      checkMatch(want.get(i).getAsJsonObject(), asRoomMessage(page.getMessages().get(i)),
          "history message " + i);
    }
    if (page.hasMore() != history.getExpectHasMore()) {
      throw new ScenarioFailure(
          "has_more = " + page.hasMore() + ", expected " + history.getExpectHasMore());
    }
  }

  private void presence(Step step) {
    dev.switchboard.testing.v1.Presence presence = step.getPresence();
    CompletableFuture<List<Member>> read = actor(step).client.presence(presence.getRoom());
    ServerException error = serverError(read);
    expectError(presence.getExpectError(), "presence", error);
    if (error != null) {
      return;
    }
    List<String> users = ClientTest.users(read.join());
    List<String> expected = new ArrayList<>(presence.getExpectUsersList());
    Collections.sort(expected);
    if (!users.equals(expected)) {
      throw new ScenarioFailure("members " + users + ", expected " + expected);
    }
  }

  private void expectPush(Step step, JsonObject raw) {
    ExpectPush expect = step.getExpectPush();
    String stream;
    switch (expect.getPushCase()) {
      case MESSAGE:
        stream = "message/" + expect.getMessage().getRoom();
        break;
      case DIRECT_MESSAGE:
        stream = "direct/";
        break;
      case NOTIFICATION:
        stream = "notification/" + expect.getNotification().getRoom();
        break;
      case MEMBER_JOINED:
        stream = "presence/" + expect.getMemberJoined().getRoom();
        break;
      case MEMBER_LEFT:
        stream = "presence/" + expect.getMemberLeft().getRoom();
        break;
      default:
        throw new ScenarioFailure("expect_push names no push");
    }
    FieldDescriptor kind =
        ExpectPush.getDescriptor().findFieldByNumber(expect.getPushCase().getNumber());
    Duration timeout = expect.getTimeoutMs() != 0
        ? Duration.ofMillis(expect.getTimeoutMs())
        : DEFAULT_PUSH_TIMEOUT;
    com.google.protobuf.Message got;
    try {
      got = actor(step).stream(stream).poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ScenarioFailure("interrupted");
    }
    if (got == null) {
      throw new ScenarioFailure("no " + kind.getName() + " on stream " + stream + " within "
          + Durations.describe(timeout));
    }
    if (got.getDescriptorForType() != kind.getMessageType()) {
      throw new ScenarioFailure("next push of " + stream + " is a "
          + got.getDescriptorForType().getName() + ": " + got);
    }
    checkMatch(get(raw, kind).getAsJsonObject(), got, kind.getName());
  }

  private void expectNoPush(Step step) {
    int waitMs = step.getExpectNoPush().getWaitMs();
    Await.sleep(waitMs != 0 ? waitMs : DEFAULT_NO_PUSH_WAIT.toMillis());
    Map<String, Integer> unread = new LinkedHashMap<>();
    Actor actor = actor(step);
    actor.streams.forEach((key, queue) -> {
      if (!queue.isEmpty()) {
        unread.put(key, queue.size());
      }
    });
    if (!unread.isEmpty()) {
      String first = unread.keySet().iterator().next();
      throw new ScenarioFailure(
          "unexpected pushes " + unread + "; first: " + actor.stream(first).peek());
    }
  }

  // Matching (scenario.proto: "every key present in the expected JSON equals
  // the actual field; nested messages by the same rule; repeated fields by
  // length and element by element").

  static void checkMatch(JsonObject expected, com.google.protobuf.Message actual, String what) {
    List<String> problems = new ArrayList<>();
    mismatches(expected, actual, "", problems);
    if (!problems.isEmpty()) {
      throw new ScenarioFailure(what + " does not match: " + String.join("; ", problems)
          + "\n  actual: " + actual);
    }
  }

  private static void mismatches(
      JsonObject expected, com.google.protobuf.Message actual, String path, List<String> out) {
    Descriptor type = actual.getDescriptorForType();
    for (Map.Entry<String, JsonElement> entry : expected.entrySet()) {
      FieldDescriptor field = field(type, entry.getKey());
      String where = path + field.getName();
      Object got = actual.getField(field);
      JsonElement want = entry.getValue();
      if (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE) {
        if (field.isRepeated()) {
          List<?> items = (List<?>) got;
          JsonArray wanted = want.getAsJsonArray();
          if (items.size() != wanted.size()) {
            out.add(where + ": " + items.size() + " elements, expected " + wanted.size());
            continue;
          }
          for (int i = 0; i < items.size(); i++) {
            mismatches(wanted.get(i).getAsJsonObject(), (com.google.protobuf.Message) items.get(i),
                where + "[" + i + "].", out);
          }
        } else {
          mismatches(want.getAsJsonObject(), (com.google.protobuf.Message) got, where + ".", out);
        }
      } else {
        Object value = scalar(actual, entry.getKey(), want, field);
        if (!value.equals(got)) {
          out.add(where + ": got " + got + ", expected " + value);
        }
      }
    }
  }

  private static FieldDescriptor field(Descriptor type, String key) {
    for (FieldDescriptor f : type.getFields()) {
      if (f.getJsonName().equals(key) || f.getName().equals(key)) {
        return f;
      }
    }
    throw new ScenarioFailure(type.getFullName() + " has no field " + key);
  }

  /**
   * The expected JSON value as the Java value the field holds: int64 strings, base64 bytes and
   * enum names parsed the proto3 JSON way.
   */
  private static Object scalar(
      com.google.protobuf.Message actual, String key, JsonElement value, FieldDescriptor field) {
    JsonObject holder = new JsonObject();
    holder.add(key, value);
    com.google.protobuf.Message.Builder builder = actual.newBuilderForType();
    try {
      JsonFormat.parser().merge(holder.toString(), builder);
    } catch (InvalidProtocolBufferException e) {
      throw new ScenarioFailure("bad expected value for " + key + ": " + value, e);
    }
    return builder.build().getField(field);
  }

  /** A key of a scenario JSON object, in either spelling proto3 JSON allows; null if absent. */
  static JsonElement get(JsonObject raw, FieldDescriptor field) {
    JsonElement camel = raw.get(field.getJsonName());
    return camel != null ? camel : raw.get(field.getName());
  }

  private static void expectError(ErrorCode expected, String call, ServerException error) {
    if (expected != ErrorCode.ERROR_CODE_UNSPECIFIED) {
      if (error == null) {
        throw new ScenarioFailure(call + " succeeded, expected " + expected);
      }
      if (error.getCode() != expected) {
        throw new ScenarioFailure(
            call + " failed with " + error.getCodeName() + ", expected " + expected);
      }
    } else if (error != null) {
      throw new ScenarioFailure(call + " failed: " + error.getMessage(), error);
    }
  }

  /** Waits for {@code future}: null on success, the server's error, or a failure. */
  private static ServerException serverError(CompletableFuture<?> future) {
    try {
      future.get(Await.WAIT.toMillis(), TimeUnit.MILLISECONDS);
      return null;
    } catch (ExecutionException e) {
      if (e.getCause() instanceof ServerException) {
        return (ServerException) e.getCause();
      }
      throw new ScenarioFailure("failed: " + e.getCause(), e.getCause());
    } catch (TimeoutException e) {
      throw new ScenarioFailure("no reply within " + Await.WAIT);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ScenarioFailure("interrupted");
    }
  }

  // The SDK's values, seen as the protocol messages the scenarios expect. A
  // typed value is re-encoded, so "decodes and re-encodes to the same bytes"
  // is what gets checked.

  static Payload wirePayload(Received item) {
    ByteString data = item.getData();
    if (REGISTRY.contains(item.getTypeName())) {
      if (item.getValue() == null) {
        throw new ScenarioFailure("registered type " + item.getTypeName() + " arrived undecoded");
      }
      data = item.getValue().toByteString();
    } else if (item.getValue() != null) {
      throw new ScenarioFailure("unregistered type " + item.getTypeName() + " was decoded");
    }
    return Payload.newBuilder()
        .setText(item.getText())
        .setData(data)
        .setTypeName(item.getTypeName())
        .build();
  }

  static RoomMessage asRoomMessage(Message m) {
    return m.toProto().toBuilder().setPayload(wirePayload(m)).build();
  }

  /**
   * How an app would send {@code payload} through the SDK: registered types via the typed API,
   * plain text as text, anything else as a Payload.
   */
  static Content contentOf(Payload payload) {
    com.google.protobuf.Message type = REGISTRY.get(payload.getTypeName());
    if (type != null && payload.getText().isEmpty()) {
      try {
        return Content.of(type.getParserForType().parseFrom(payload.getData()));
      } catch (InvalidProtocolBufferException e) {
        throw new ScenarioFailure("scenario payload does not decode as " + payload.getTypeName());
      }
    }
    if (!payload.getText().isEmpty() && payload.getData().isEmpty()
        && payload.getTypeName().isEmpty()) {
      return Content.text(payload.getText());
    }
    return Content.payload(payload);
  }

  /**
   * One scenario client: the SDK client plus every push it received, in per-stream queues (room
   * messages, presence and notifications per room, direct messages).
   */
  private static final class Actor implements ClientListener {
    final String alias;
    Client client;
    final Map<String, BlockingQueue<com.google.protobuf.Message>> streams =
        new ConcurrentHashMap<>();
    final List<String> errors = new CopyOnWriteArrayList<>();
    /** The reconnect after the last drop_connection, until a step has waited for it. */
    private volatile Reconnect reconnect;

    Actor(String alias) {
      this.alias = alias;
    }

    /** Drops the transport; the actor's next step waits for the reconnect. */
    void dropConnection() {
      reconnect = new Reconnect();
      client.dropConnectionForTesting();
    }

    /** After a drop: waits until the client is CONNECTED again (rooms rejoined). */
    void awaitReconnect() {
      Reconnect pending = reconnect;
      if (pending == null) {
        return;
      }
      StateChange change;
      try {
        change = pending.done.get(Await.WAIT.toMillis(), TimeUnit.MILLISECONDS);
      } catch (TimeoutException e) {
        throw new ScenarioFailure(alias + " did not reconnect within " + Await.WAIT);
      } catch (ExecutionException e) {
        throw new ScenarioFailure(alias + ": " + e.getCause(), e.getCause());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new ScenarioFailure("interrupted");
      } finally {
        reconnect = null;
      }
      if (change.getState() != ConnectionState.CONNECTED) {
        throw new ScenarioFailure(alias + " closed instead of reconnecting: " + change);
      }
    }

    @Override
    public void onStateChange(StateChange change) {
      Reconnect pending = reconnect;
      if (pending != null) {
        pending.saw(change);
      }
    }

    BlockingQueue<com.google.protobuf.Message> stream(String key) {
      return streams.computeIfAbsent(key, k -> new LinkedBlockingQueue<>(STREAM_BOUND));
    }

    void put(String key, com.google.protobuf.Message push) {
      try {
        if (!stream(key).offer(push)) {
          errors.add("stream " + key + " overflowed");
        }
      } catch (ScenarioFailure e) {
        errors.add(e.getMessage());
      }
    }

    @Override
    public void onDirectMessage(DirectMessage message) {
      try {
        put("direct/", message.toProto().toBuilder().setPayload(wirePayload(message)).build());
      } catch (ScenarioFailure e) {
        errors.add(e.getMessage());
      }
    }

    @Override
    public void onNotification(Notification n) {
      try {
        put("notification/" + n.getRoom(),
            n.toProto().toBuilder().setPayload(wirePayload(n)).build());
      } catch (ScenarioFailure e) {
        errors.add(e.getMessage());
      }
    }

    SubscriptionListener listenerFor(String room) {
      return new SubscriptionListener() {
        @Override
        public void onMessage(Message message) {
          try {
            put("message/" + room, asRoomMessage(message));
          } catch (ScenarioFailure e) {
            errors.add(e.getMessage());
          }
        }

        @Override
        public void onGap(Gap gap) {
          errors.add("unexpected " + gap);
        }

        @Override
        public void onMemberJoined(MemberJoined event) {
          put("presence/" + room, event);
        }

        @Override
        public void onMemberLeft(MemberLeft event) {
          put("presence/" + room, event);
        }

        @Override
        public void onNotification(Notification n) {
          Actor.this.onNotification(n);
        }

        @Override
        public void onClosed(SwitchboardException error) {
          if (error != null) {
            errors.add(room + " ended: " + error);
          }
        }
      };
    }

    @Override
    public String toString() {
      return alias + " " + streams.keySet().stream().sorted().collect(Collectors.toList());
    }
  }

  /**
   * The way back after a drop: RECONNECTING, then CONNECTED (once the rooms are rejoined); a
   * CONNECTED before any RECONNECTING is the old connection's, still on its way to the listener.
   * {@link #saw} runs on the client's callback thread only.
   */
  private static final class Reconnect {
    final CompletableFuture<StateChange> done = new CompletableFuture<>();
    private boolean lost;

    void saw(StateChange change) {
      switch (change.getState()) {
        case RECONNECTING:
          lost = true;
          break;
        case CONNECTED:
          if (lost) {
            done.complete(change);
          }
          break;
        case CLOSED:
          done.complete(change);
          break;
        default:
          break;
      }
    }
  }
}
