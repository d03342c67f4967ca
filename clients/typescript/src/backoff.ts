/** Reconnect backoff settings. */
export interface BackoffOptions {
  /** Delay cap of the first retry, in ms; doubles with every attempt. Default 500. */
  baseMs?: number;
  /** Largest delay cap, in ms. Default 20000. */
  maxMs?: number;
}

/** Default first-retry cap (0.5 s). */
export const DEFAULT_BACKOFF_BASE_MS = 500;
/** Default largest delay (20 s). */
export const DEFAULT_BACKOFF_MAX_MS = 20_000;

/**
 * Full-jitter exponential backoff: a uniformly random delay in
 * `[0, min(maxMs, baseMs * 2^attempt))`, where `attempt` counts the failed
 * attempts since the last successful connection, starting at 0.
 * Full jitter spreads a crowd of clients that lost the same server.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? DEFAULT_BACKOFF_BASE_MS;
  const max = options.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
  // 2^attempt overflows to Infinity for large attempts; min() keeps it capped.
  const cap = Math.min(max, base * 2 ** Math.max(0, attempt));
  return Math.floor(random() * cap);
}
