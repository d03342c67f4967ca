/**
 * Test hooks. Not part of the public API: nothing here is exported from the
 * package entry points. The SDK's own tests (the conformance scenarios'
 * `drop_connection` step and the reconnect tests) use them to simulate a
 * network failure and to make the backoff jitter deterministic.
 */
export interface TestHooks {
  /**
   * Drops the transport at once without a WebSocket close handshake (with
   * `ws`: `terminate()`, which destroys the TCP socket), as a network failure
   * would. The client then reconnects on its own, as for any close 1006.
   * Returns false when there was no connection to drop.
   */
  dropConnection(): boolean;
  /**
   * Replaces the random source of the jitter of reconnects and publish
   * retries (default `Math.random`).
   */
  setRandom(random: () => number): void;
}

/** Test hooks of each live client, keyed by the client object. */
export const testHooks = new WeakMap<object, TestHooks>();
