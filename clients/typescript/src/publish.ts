/**
 * Safe publishing: the idempotency key a publish carries when the app gives
 * none, and which failures `Client.publish` retries on its own, how often
 * and how long apart.
 */
import { backoffDelay } from "./backoff.js";
import { ServerError } from "./errors.js";
import { ErrorCode } from "./gen/switchboard/v1/errors_pb.js";

/** Default of `ClientOptions.publishRetries`. */
export const DEFAULT_PUBLISH_RETRIES = 3;
/** Delay cap of the first publish retry, in ms; doubles with every retry. */
const PUBLISH_RETRY_BASE_MS = 100;
/** Largest delay cap of a publish retry, in ms. */
const PUBLISH_RETRY_MAX_MS = 2000;

/**
 * A fresh idempotency key: 128 bits from the platform's CSPRNG
 * (`crypto.getRandomValues`, in browsers and Node ≥ 20) as 32 lowercase hex
 * characters. `publish` uses one of these when the app gives no key; an app
 * that records what it is about to send (an outbox) can make its own with it.
 */
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let key = "";
  for (const byte of bytes) {
    key += byte.toString(16).padStart(2, "0");
  }
  return key;
}

/**
 * Whether `publish` sends the same publish again after `error`: only when the
 * server said the broker did not carry it out (`ERROR_CODE_UNAVAILABLE`) or
 * did not confirm it (`ERROR_CODE_OUTCOME_UNKNOWN`). Both are safe to repeat
 * with the same key. Other errors are the app's to handle: a timeout or a
 * lost connection may hide a slow server or a long outage, and retrying
 * those belongs to the app's own policy.
 */
export function isRetriedPublishError(error: unknown): boolean {
  return (
    error instanceof ServerError &&
    (error.code === ErrorCode.UNAVAILABLE || error.code === ErrorCode.OUTCOME_UNKNOWN)
  );
}

/**
 * The wait before publish retry number `retry` (0 for the first): full
 * jitter, a uniformly random delay below min(2 s, 100 ms × 2^retry).
 */
export function publishRetryDelay(retry: number, random: () => number = Math.random): number {
  return backoffDelay(retry, { baseMs: PUBLISH_RETRY_BASE_MS, maxMs: PUBLISH_RETRY_MAX_MS }, random);
}
