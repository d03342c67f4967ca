package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.protobuf.util.JsonFormat;
import dev.switchboard.testing.v1.Scenario;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Conformance scenarios ({@code tests/scenarios/*.json}), each replayed through the SDK's public
 * API against a fresh server.
 */
class ScenariosTest {
  static final Path SCENARIOS = TestServer.repo().resolve("tests").resolve("scenarios");

  static List<Path> files() throws IOException {
    try (Stream<Path> paths = Files.list(SCENARIOS)) {
      return paths.filter(p -> p.getFileName().toString().endsWith(".json"))
          .sorted()
          .collect(Collectors.toList());
    }
  }

  @Test
  void scenariosExist() throws IOException {
    // No scenarios is a failure, not a skip.
    assertFalse(files().isEmpty(), "no scenario in " + SCENARIOS);
  }

  @TestFactory
  Stream<DynamicTest> scenarios() throws IOException {
    return files().stream().map(path -> {
      String stem = path.getFileName().toString().replaceFirst("\\.json$", "");
      return DynamicTest.dynamicTest(stem, () -> run(path, stem, null));
    });
  }

  @Test
  void aWrongExpectationFails() {
    // The runner must be able to fail: replay room_fanout expecting another text.
    ScenarioRunner.ScenarioFailure failure = assertThrows(ScenarioRunner.ScenarioFailure.class,
        () -> run(SCENARIOS.resolve("room_fanout.json"), "room_fanout", raw -> {
          JsonObject message = firstExpectedMessage(raw);
          message.getAsJsonObject("payload").addProperty("text", "uno");
        }));
    assertTrue(failure.getMessage().contains("does not match"), failure.getMessage());
    assertTrue(failure.getMessage().contains("uno"), failure.getMessage());
  }

  @Test
  void aMissingPushFails() {
    // ... and so must a push that never comes, within the step's timeout.
    ScenarioRunner.ScenarioFailure failure = assertThrows(ScenarioRunner.ScenarioFailure.class,
        () -> run(SCENARIOS.resolve("room_fanout.json"), "room_fanout", raw -> {
          firstExpectedMessage(raw).addProperty("room", "elsewhere");
          firstExpectPush(raw).addProperty("timeoutMs", 200);
        }));
    assertTrue(failure.getMessage().contains("no message on stream message/elsewhere"),
        failure.getMessage());
  }

  private static JsonObject firstExpectPush(JsonObject raw) {
    for (JsonElement step : raw.getAsJsonArray("steps")) {
      JsonObject expect = step.getAsJsonObject().getAsJsonObject("expectPush");
      if (expect != null && expect.has("message")) {
        return expect;
      }
    }
    throw new AssertionError("room_fanout has no expected message");
  }

  private static JsonObject firstExpectedMessage(JsonObject raw) {
    return firstExpectPush(raw).getAsJsonObject("message");
  }

  /** Replays a scenario file against a fresh server, after {@code edit} (if any) changed it. */
  private static void run(Path path, String stem, Consumer<JsonObject> edit) throws IOException {
    JsonObject raw = JsonParser.parseString(VectorsTest.read(path)).getAsJsonObject();
    if (edit != null) {
      edit.accept(raw);
    }
    Scenario.Builder scenario = Scenario.newBuilder();
    JsonFormat.parser().merge(raw.toString(), scenario);
    assertEquals(stem, scenario.getName(), "a scenario's name is its file's stem");
    assertFalse(scenario.getStepsList().isEmpty(), "a scenario has steps");
    try (TestServer server = TestServer.start()) {
      new ScenarioRunner(server.url).run(scenario.build(), raw);
    }
  }
}
