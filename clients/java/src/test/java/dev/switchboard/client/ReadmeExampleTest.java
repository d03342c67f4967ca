package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.switchboard.examples.Hello;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.junit.jupiter.api.Test;

/** The README's example is {@link Hello}, word for word, and it runs. */
class ReadmeExampleTest {
  private static final Path JAVA_DIR = Paths.get("").toAbsolutePath();

  @Test
  void readmeShowsTheExampleAsItIs() throws Exception {
    String readme = VectorsTest.read(JAVA_DIR.resolve("README.md"));
    String example = VectorsTest.read(
        JAVA_DIR.resolve("src/test/java/dev/switchboard/examples/Hello.java"));
    assertTrue(readme.contains("```java\n" + example + "```\n"),
        "README.md must show src/test/java/dev/switchboard/examples/Hello.java verbatim");
  }

  @Test
  void exampleRunsAgainstAServer() throws Exception {
    PrintStream stdout = System.out;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    try (TestServer server = TestServer.start()) {
      System.setOut(new PrintStream(captured, true, StandardCharsets.UTF_8.name()));
      try {
        Hello.main(new String[] {server.url});
      } finally {
        System.setOut(stdout);
      }
    }
    assertEquals("#1 alice: hello, switchboard",
        new String(captured.toByteArray(), StandardCharsets.UTF_8).trim());
  }
}
