/**
 * A bounded FIFO read by one async iterator. When full, `push` drops the
 * oldest item (the newest are kept, since a live consumer cares most about
 * them and older ones can be read back from history) and returns it.
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

  /** Adds an item; returns the item dropped to make room, if any. */
  push(item: T): { dropped: T } | undefined {
    if (this.ended) {
      return undefined;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ value: item, done: false });
      return undefined;
    }
    let dropped: { dropped: T } | undefined;
    if (this.size >= this.capacity) {
      dropped = { dropped: this.items[this.head] as T };
      this.head++;
    }
    this.items.push(item);
    this.compact();
    return dropped;
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
