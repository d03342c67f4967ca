package dev.switchboard.client;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;

/** Bounded waits for tests. */
final class Await {
  /** The default bound of a single wait. */
  static final Duration WAIT = Duration.ofSeconds(10);

  private Await() {}

  /** The future's value, within {@link #WAIT}; its failure is rethrown unwrapped. */
  static <T> T result(CompletableFuture<T> future) {
    return result(future, WAIT);
  }

  static <T> T result(CompletableFuture<T> future, Duration wait) {
    try {
      return future.get(wait.toMillis(), TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof RuntimeException) {
        throw (RuntimeException) cause;
      }
      if (cause instanceof Error) {
        throw (Error) cause;
      }
      throw new AssertionError(cause);
    } catch (TimeoutException e) {
      throw new AssertionError("no result within " + wait, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** The future's failure, within {@link #WAIT}, checked to be of a type. */
  static <E extends Throwable> E failure(CompletableFuture<?> future, Class<E> type) {
    try {
      Object value = future.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
      return fail("expected " + type.getSimpleName() + ", got the value " + value);
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      assertTrue(type.isInstance(cause), () -> "expected " + type.getSimpleName() + ", got " + cause);
      return type.cast(cause);
    } catch (TimeoutException e) {
      return fail("no result within " + WAIT);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** Polls until {@code condition} holds, within {@link #WAIT}. */
  static void until(String what, BooleanSupplier condition) {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        fail("timed out waiting until " + what);
      }
      sleep(5);
    }
  }

  static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
