package dev.switchboard.client;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * One {@code switchboard serve} process on 127.0.0.1. Every wait is bounded: the server must
 * print its address within {@link #STARTUP_TIMEOUT_MS} and stop within {@link
 * #STOP_TIMEOUT_MS}.
 */
final class TestServer implements AutoCloseable {
  static final long STARTUP_TIMEOUT_MS = 15_000;
  static final long STOP_TIMEOUT_MS = 10_000;
  private static final Pattern LISTENING = Pattern.compile("listening on http://([0-9.]+):(\\d+)");
  private static final int LOG_LIMIT = 8_000;

  private final Process process;
  private final StringBuilder log = new StringBuilder();
  private final List<Thread> pumps = new ArrayList<>();
  final String host;
  final int port;
  final String url;

  private TestServer(Map<String, String> env, String listen) throws IOException {
    Path binary = binary();
    if (!Files.isExecutable(binary)) {
      throw new IllegalStateException("server binary not found: " + binary + " (set SWITCHBOARD_BIN)");
    }
    ProcessBuilder builder = new ProcessBuilder(binary.toString(), "serve", "--listen", listen);
    Map<String, String> environment = builder.environment();
    // The server reads every SWITCHBOARD_* variable as configuration and
    // refuses unknown keys (SWITCHBOARD_BIN among them): pass none through.
    environment.keySet().removeIf(k -> k.startsWith("SWITCHBOARD_"));
    environment.put("SWITCHBOARD_LIMITS__CLOSE_TIMEOUT", "300ms");
    environment.put("SWITCHBOARD_SHUTDOWN_TIMEOUT", "2s");
    environment.put("SWITCHBOARD_LOG__LEVEL", "warn");
    environment.put("NO_COLOR", "1");
    environment.putAll(env);
    builder.redirectInput(ProcessBuilder.Redirect.from(Paths.get("/dev/null").toFile()));
    process = builder.start();
    BlockingQueue<String> lines = new ArrayBlockingQueue<>(64);
    pump(process.getInputStream(), lines);
    pump(process.getErrorStream(), null);
    String first;
    try {
      first = lines.poll(STARTUP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      first = null;
    }
    Matcher m = first == null ? null : LISTENING.matcher(first);
    if (m == null || !m.find()) {
      kill();
      throw new IllegalStateException(
          "server did not print its address (first line " + first + "); its log:\n" + logs());
    }
    host = m.group(1);
    port = Integer.parseInt(m.group(2));
    url = "ws://" + host + ":" + port + "/ws";
  }

  /** A development-mode server on a free port. */
  static TestServer start() throws IOException {
    return new TestServer(new HashMap<>(), "127.0.0.1:0");
  }

  /** A server with extra configuration, on a free port. */
  static TestServer start(Map<String, String> env) throws IOException {
    return new TestServer(env, "127.0.0.1:0");
  }

  /** A development-mode server on a given port (e.g. a restart on the same port). */
  static TestServer startOnPort(int port) throws IOException {
    return new TestServer(new HashMap<>(), "127.0.0.1:" + port);
  }

  static Path repo() {
    Path dir = Paths.get("").toAbsolutePath();
    for (Path p = dir; p != null; p = p.getParent()) {
      if (Files.exists(p.resolve("Cargo.toml")) && Files.isDirectory(p.resolve("proto"))) {
        return p;
      }
    }
    throw new IllegalStateException("cannot find the repository root above " + dir);
  }

  static Path binary() {
    String env = System.getenv("SWITCHBOARD_BIN");
    return env != null && !env.isEmpty()
        ? Paths.get(env)
        : repo().resolve("target").resolve("debug").resolve("switchboard");
  }

  private void pump(InputStream stream, BlockingQueue<String> lines) {
    Thread t = new Thread(() -> {
      try (BufferedReader r =
          new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
        String line;
        while ((line = r.readLine()) != null) {
          if (lines != null) {
            lines.offer(line);
          }
          synchronized (log) {
            if (log.length() < LOG_LIMIT) {
              log.append(line).append('\n');
            }
          }
        }
      } catch (IOException e) {
        // the process is gone
      }
    }, "test-server-pump");
    t.setDaemon(true);
    t.start();
    pumps.add(t);
  }

  String logs() {
    synchronized (log) {
      return log.toString();
    }
  }

  long pid() {
    return process.pid();
  }

  boolean isAlive() {
    return process.isAlive();
  }

  /** SIGTERM (graceful: connections get close 1001), then waits for the exit. */
  int stop() throws InterruptedException {
    resume();
    process.destroy();
    if (!process.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
      kill();
    }
    return process.exitValue();
  }

  /** SIGKILL, and waits. */
  void kill() {
    if (process.isAlive()) {
      signal("CONT");
      process.destroyForcibly();
      try {
        process.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    for (Thread t : pumps) {
      try {
        t.join(STOP_TIMEOUT_MS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** SIGSTOP (see {@link #pause(Process)}). */
  void pause() throws IOException, InterruptedException {
    pause(process);
  }

  void resume() {
    if (process.isAlive()) {
      signal("CONT");
    }
  }

  /**
   * SIGSTOP to {@code process}, and waits until every thread of it has stopped: a busy machine
   * can take a while to stop a thread that was woken by the signal.
   */
  static void pause(Process process) throws IOException, InterruptedException {
    signal(process, "STOP");
    Path tasks = Paths.get("/proc/" + process.pid() + "/task");
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(STOP_TIMEOUT_MS);
    while (true) {
      boolean stopped;
      try (Stream<Path> stats = Files.list(tasks)) {
        stopped = stats.allMatch(TestServer::threadStopped);
      }
      if (stopped) {
        return;
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("process " + process.pid() + " did not stop on SIGSTOP");
      }
      Thread.sleep(5);
    }
  }

  private static boolean threadStopped(Path task) {
    try {
      String stat = new String(Files.readAllBytes(task.resolve("stat")), StandardCharsets.UTF_8);
      // The state follows the parenthesised command name: "T" or "t" is stopped.
      String state = stat.substring(stat.lastIndexOf(')') + 1).trim().split(" ")[0];
      return state.equals("T") || state.equals("t");
    } catch (IOException | RuntimeException e) {
      return true; // the thread is gone
    }
  }

  private void signal(String name) {
    signal(process, name);
  }

  /** Sends SIG{@code name} (e.g. "CONT") to {@code process} with kill(1), and waits for kill. */
  static void signal(Process process, String name) {
    try {
      Process kill = new ProcessBuilder("kill", "-" + name, Long.toString(process.pid()))
          .redirectErrorStream(true)
          .start();
      kill.getInputStream().readAllBytes();
      kill.waitFor(STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (IOException e) {
      throw new IllegalStateException("cannot send SIG" + name, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  @Override
  public void close() {
    kill();
  }
}
