package dev.switchboard.client;

import java.util.ArrayDeque;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Runs tasks one at a time, in submission order, on an underlying executor: the client's
 * callback thread, or the app's executor. Every app-facing callback and future completion of a
 * client goes through one of these, so they never overlap and keep their order.
 *
 * <p>The queue is bounded by construction, not by a check: each delivery sink has at most one
 * drain task queued at a time, and futures are bounded by the in-flight limit.
 */
final class SerialExecutor implements Executor {
  private static final Logger LOG = Logger.getLogger("dev.switchboard.client");
  // Tasks run per turn on the underlying executor before yielding it, so a
  // shared executor (e.g. an Android main thread) is never monopolised.
  private static final int BATCH = 64;

  /** Where the tasks run. */
  private final Executor target;
  /** Tasks not yet run; guarded by this. */
  private final ArrayDeque<Runnable> tasks = new ArrayDeque<>();
  /** True while a turn is queued or running on {@link #target}; guarded by this. */
  private boolean scheduled;
  /** The thread running a turn now, to detect calls from inside a callback. */
  private volatile Thread current;

  SerialExecutor(Executor target) {
    this.target = target;
  }

  @Override
  public void execute(Runnable task) {
    synchronized (this) {
      tasks.add(task);
      if (scheduled) {
        return;
      }
      scheduled = true;
    }
    submit();
  }

  /** Whether the calling thread is running one of these tasks. */
  boolean inCallback() {
    return current == Thread.currentThread();
  }

  private void submit() {
    try {
      target.execute(this::turn);
    } catch (RejectedExecutionException e) {
      synchronized (this) {
        scheduled = false;
      }
      LOG.log(Level.SEVERE, "switchboard: the callback executor rejected a task", e);
    }
  }

  private void turn() {
    current = Thread.currentThread();
    try {
      for (int i = 0; i < BATCH; i++) {
        Runnable task;
        synchronized (this) {
          task = tasks.poll();
          if (task == null) {
            scheduled = false;
            return;
          }
        }
        try {
          task.run();
        } catch (RuntimeException | Error e) {
          LOG.log(Level.WARNING, "switchboard: a callback threw", e);
        }
      }
    } finally {
      current = null;
    }
    submit();
  }
}
