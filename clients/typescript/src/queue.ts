/**
 * A bounded FIFO read by one async iterator. The producer never waits: it
 * checks `isFull` and decides what to do (subscriptions drop the newest
 * messages and leave one overflow marker, which `pushOver` may place beyond
 * the capacity).
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private head = 0;
  private readonly waiters: {
    resolve: (r: IteratorResult<T, undefined>) => void;
    reject: (e: unknown) => void;
  }[] = [];
  private ended = false;
  private error: Error | undefined = undefined;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) {
      throw new RangeError("switchboard: buffer capacity must be at least 1");
    }
  }

  /** Items waiting to be read. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** Whether `end` was called. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Whether `capacity` items are waiting. */
  get isFull(): boolean {
    return this.size >= this.capacity;
  }

  /** The newest waiting item, if any. */
  last(): T | undefined {
    return this.size > 0 ? this.items[this.items.length - 1] : undefined;
  }

  /**
   * Adds an item if there is room; returns false (and drops nothing) when
   * the queue is full.
   */
  push(item: T): boolean {
    if (this.isFull) {
      return false;
    }
    this.pushOver(item);
    return true;
  }

  /** Adds an item even when full (for a marker one slot past the capacity). */
  pushOver(item: T): void {
    if (this.ended) {
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ value: item, done: false });
      return;
    }
    this.items.push(item);
  }

  /** Ends the queue: readers get the buffered items, then done (or `error`). */
  end(error?: Error): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this.error = error;
    for (const waiter of this.waiters.splice(0)) {
      if (error === undefined) {
        waiter.resolve({ value: undefined, done: true });
      } else {
        waiter.reject(error);
      }
    }
  }

  /** The next item, waiting for one if needed. */
  next(): Promise<IteratorResult<T, undefined>> {
    if (this.size > 0) {
      const value = this.items[this.head] as T;
      this.items[this.head] = undefined as T;
      this.head++;
      this.compact();
      return Promise.resolve({ value, done: false });
    }
    if (this.ended) {
      if (this.error !== undefined) {
        const error = this.error;
        // Report the error once; later reads just see the end.
        this.error = undefined;
        return Promise.reject(error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Drops the buffered items (the reader stopped). */
  clear(): void {
    this.items = [];
    this.head = 0;
  }

  private compact(): void {
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
