package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.example.chat.v1.ChatMessage;
import com.example.chat.v1.TypingEvent;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;
import com.google.protobuf.UnknownFieldSet;
import com.google.protobuf.util.JsonFormat;
import dev.switchboard.testing.v1.Vector;
import dev.switchboard.testing.v1.VectorSet;
import dev.switchboard.v1.ClientFrame;
import dev.switchboard.v1.ServerFrame;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Golden vectors ({@code tests/vectors}): the five rules of {@code
 * proto/switchboard/testing/v1/vectors.proto} for every vector, with protobuf-java's binary codec
 * and {@link JsonFormat}. protobuf-java keeps unknown fields, so re-encoding a decoded vector
 * must give back {@code <name>.bin} byte for byte (rule 4), and the message parsed from JSON the
 * canonical bytes (rule 5).
 */
class VectorsTest {
  static final Path VECTORS = TestServer.repo().resolve("tests").resolve("vectors");

  /** The message types vectors may name, by full name. */
  private static final Map<String, Message> TYPES = new HashMap<>();

  static {
    for (Message m : new Message[] {
        ClientFrame.getDefaultInstance(),
        ServerFrame.getDefaultInstance(),
        ChatMessage.getDefaultInstance(),
        TypingEvent.getDefaultInstance()}) {
      TYPES.put(m.getDescriptorForType().getFullName(), m);
    }
  }

  static List<Vector> manifest() throws IOException {
    VectorSet.Builder set = VectorSet.newBuilder();
    JsonFormat.parser().merge(read(VECTORS.resolve("manifest.json")), set);
    return set.getVectorsList();
  }

  @Test
  void manifestIsNotEmpty() throws IOException {
    assertFalse(manifest().isEmpty(), "tests/vectors/manifest.json lists no vectors");
  }

  @Test
  void everyVectorFileIsListed() throws IOException {
    Set<String> names = manifest().stream().map(Vector::getName).collect(Collectors.toSet());
    Set<String> unlisted = new HashSet<>();
    try (Stream<Path> files = Files.list(VECTORS)) {
      files.map(p -> p.getFileName().toString())
          .filter(n -> !n.equals("manifest.json") && (n.endsWith(".bin") || n.endsWith(".json")))
          .map(n -> n.substring(0, n.indexOf('.')))
          .filter(stem -> !names.contains(stem))
          .forEach(unlisted::add);
    }
    assertTrue(unlisted.isEmpty(), "vector files missing from the manifest: " + unlisted);
  }

  @TestFactory
  Stream<DynamicTest> vectors() throws IOException {
    return manifest().stream().map(v -> DynamicTest.dynamicTest(v.getName(), () -> check(v)));
  }

  private static void check(Vector vector) throws IOException {
    Message prototype = TYPES.get(vector.getMessageType());
    assertNotNull(prototype, "unknown message type " + vector.getMessageType());
    Path canonicalPath = VECTORS.resolve(vector.getName() + ".canonical.bin");
    assertEquals(vector.getHasUnknownFields(), Files.exists(canonicalPath),
        "a .canonical.bin exists exactly when has_unknown_fields is set");
    byte[] binary = Files.readAllBytes(VECTORS.resolve(vector.getName() + ".bin"));
    byte[] canonical = vector.getHasUnknownFields() ? Files.readAllBytes(canonicalPath) : binary;
    String json = read(VECTORS.resolve(vector.getName() + ".json"));

    // 1. Decode the binary.
    Message decoded = prototype.getParserForType().parseFrom(binary);

    // 2. Print it as proto3 JSON: equal to the .json file as a JSON value.
    JsonElement printed = JsonParser.parseString(JsonFormat.printer().print(decoded));
    assertEquals(JsonParser.parseString(json), printed, "printed JSON");

    // 3. Parse the JSON: equal to the decoded message. Unknown fields exist
    //    only in the binary, so compare with the binary decoded without them.
    Message.Builder parsedBuilder = prototype.newBuilderForType();
    JsonFormat.parser().merge(json, parsedBuilder);
    Message parsed = parsedBuilder.build();
    assertEquals(withoutUnknownFields(decoded), parsed, "parsed JSON");

    // 4. Re-encode the decoded message: protobuf-java keeps unknown fields, so
    //    the bytes must be the original ones.
    assertArrayEquals(binary, decoded.toByteArray(), "re-encoded binary");

    // 5. Encode the message parsed from JSON: the canonical bytes.
    assertArrayEquals(canonical, parsed.toByteArray(), "encoded JSON");
  }

  /** A copy of {@code m} without unknown fields, at any depth. */
  static Message withoutUnknownFields(Message m) {
    Message.Builder b = m.toBuilder();
    b.setUnknownFields(UnknownFieldSet.getDefaultInstance());
    for (Map.Entry<FieldDescriptor, Object> e : m.getAllFields().entrySet()) {
      FieldDescriptor field = e.getKey();
      if (field.getJavaType() != FieldDescriptor.JavaType.MESSAGE) {
        continue;
      }
      if (field.isRepeated()) {
        List<?> items = (List<?>) e.getValue();
        for (int i = 0; i < items.size(); i++) {
          b.setRepeatedField(field, i, withoutUnknownFields((Message) items.get(i)));
        }
      } else {
        b.setField(field, withoutUnknownFields((Message) e.getValue()));
      }
    }
    return b.build();
  }

  static String read(Path path) throws IOException {
    return new String(Files.readAllBytes(path), StandardCharsets.UTF_8);
  }
}
