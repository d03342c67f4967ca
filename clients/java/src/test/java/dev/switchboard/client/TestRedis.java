package dev.switchboard.client;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One {@code redis-server} process (the binary from PATH) on a free 127.0.0.1 port, in memory
 * only (no snapshot, no append-only file), for tests of the server's Redis broker. Every wait is
 * bounded; {@link #close()} resumes it if paused and kills it.
 */
final class TestRedis implements AutoCloseable {
  private static final int ATTEMPTS = 3;
  private static final int LOG_LIMIT = 8_000;

  private final Process process;
  private final StringBuilder log = new StringBuilder();
  private final Thread pump;
  final int port;
  /** Where it listens: redis://127.0.0.1:PORT. */
  final String url;

  private TestRedis(Path binary, int port) throws IOException {
    this.port = port;
    this.url = "redis://127.0.0.1:" + port;
    process = new ProcessBuilder(binary.toString(), "--bind", "127.0.0.1",
        "--port", Integer.toString(port), "--save", "", "--appendonly", "no",
        "--daemonize", "no")
        .redirectErrorStream(true)
        .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
        .start();
    pump = new Thread(() -> drain(process.getInputStream()), "test-redis-pump");
    pump.setDaemon(true);
    pump.start();
  }

  /**
   * Starts a redis-server and waits until it answers PING. The free port is found by binding and
   * releasing it, so another process may take it first: then another port is tried.
   */
  static TestRedis start() throws IOException, InterruptedException {
    Path binary = binary();
    List<String> failures = new ArrayList<>();
    for (int i = 0; i < ATTEMPTS; i++) {
      TestRedis redis = new TestRedis(binary, freePort());
      String failure = redis.awaitAnswer();
      if (failure == null) {
        return redis;
      }
      redis.close();
      failures.add(failure + "; its output:\n" + redis.logs());
    }
    throw new IllegalStateException("redis-server did not start:\n" + String.join("\n", failures));
  }

  private static Path binary() {
    String path = System.getenv("PATH");
    for (String dir : (path == null ? "" : path).split(File.pathSeparator)) {
      Path candidate = Paths.get(dir.isEmpty() ? "." : dir, "redis-server");
      if (Files.isExecutable(candidate)) {
        return candidate;
      }
    }
    throw new IllegalStateException("redis-server is not installed (not on PATH): scripts/test.sh"
        + " installs it (apt-get install redis-server)");
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket()) {
      socket.bind(new InetSocketAddress("127.0.0.1", 0));
      return socket.getLocalPort();
    }
  }

  /** Null once PING is answered; why not, if it exits or does not within the startup bound. */
  private String awaitAnswer() throws InterruptedException {
    long deadline =
        System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(TestServer.STARTUP_TIMEOUT_MS);
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        return "redis-server exited before answering on port " + port;
      }
      if (answersPing()) {
        return null;
      }
      Thread.sleep(20);
    }
    return "redis-server did not answer on port " + port + " within "
        + TestServer.STARTUP_TIMEOUT_MS + " ms";
  }

  private boolean answersPing() {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress("127.0.0.1", port), 1000);
      socket.setSoTimeout(1000);
      OutputStream out = socket.getOutputStream();
      out.write("PING\r\n".getBytes(StandardCharsets.US_ASCII));
      out.flush();
      BufferedReader in = new BufferedReader(
          new InputStreamReader(socket.getInputStream(), StandardCharsets.US_ASCII));
      String line = in.readLine();
      return line != null && line.startsWith("+PONG");
    } catch (IOException e) {
      return false;
    }
  }

  /** The server settings that make a switchboard node use this Redis as its broker. */
  Map<String, String> serverEnv() {
    Map<String, String> env = new HashMap<>();
    env.put("SWITCHBOARD_BROKER", "redis");
    env.put("SWITCHBOARD_REDIS_URL", url);
    return env;
  }

  /** SIGSTOP, as a hung Redis: its sockets stay open and nothing is answered. */
  void pause() throws IOException, InterruptedException {
    TestServer.pause(process);
  }

  /** SIGCONT: undoes {@link #pause()}. */
  void resume() {
    if (process.isAlive()) {
      TestServer.signal(process, "CONT");
    }
  }

  private void drain(InputStream stream) {
    try (BufferedReader r =
        new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        synchronized (log) {
          if (log.length() < LOG_LIMIT) {
            log.append(line).append('\n');
          }
        }
      }
    } catch (IOException e) {
      // the process is gone
    }
  }

  String logs() {
    synchronized (log) {
      return log.toString();
    }
  }

  /** Resumes (if paused) and kills it, and waits until it is gone. Idempotent. */
  @Override
  public void close() {
    if (process.isAlive()) {
      resume();
      process.destroyForcibly();
    }
    try {
      process.waitFor(TestServer.STOP_TIMEOUT_MS, TimeUnit.MILLISECONDS);
      pump.join(TestServer.STOP_TIMEOUT_MS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
