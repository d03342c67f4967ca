package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.stream.Collectors;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails a test during which the SDK logged an error, or a callback (a test's listener) threw:
 * such failures happen on SDK threads, where an assertion would otherwise go unnoticed.
 * Registered for every test through {@code META-INF/services}.
 */
public final class NoErrorsLogged implements BeforeEachCallback, AfterEachCallback {
  // Held strongly: java.util.logging keeps only weak references to loggers.
  private static final Logger SDK = Logger.getLogger("dev.switchboard.client");
  private static final ExtensionContext.Namespace NS =
      ExtensionContext.Namespace.create(NoErrorsLogged.class);

  /** Collects the records that fail a test. */
  private static final class Collector extends Handler {
    final List<LogRecord> bad = new CopyOnWriteArrayList<>();

    @Override
    public void publish(LogRecord record) {
      String message = String.valueOf(record.getMessage());
      if (record.getLevel().intValue() >= Level.SEVERE.intValue() || message.contains("threw")) {
        bad.add(record);
      }
    }

    @Override
    public void flush() {}

    @Override
    public void close() {}
  }

  @Override
  public void beforeEach(ExtensionContext context) {
    Collector collector = new Collector();
    SDK.addHandler(collector);
    context.getStore(NS).put(Collector.class, collector);
  }

  @Override
  public void afterEach(ExtensionContext context) {
    Collector collector = context.getStore(NS).remove(Collector.class, Collector.class);
    SDK.removeHandler(collector);
    assertTrue(collector.bad.isEmpty(), () -> "errors logged: " + collector.bad.stream()
        .map(r -> r.getMessage() + (r.getThrown() == null ? "" : ": " + r.getThrown()))
        .collect(Collectors.joining("; ")));
  }
}
