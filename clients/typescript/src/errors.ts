import { ErrorCode } from "./gen/switchboard/v1/errors_pb.js";

/**
 * Base class of every error the SDK rejects a command with. `temporary` tells
 * whether the same command may succeed when retried later.
 */
export class SwitchboardError extends Error {
  /** True when retrying later may succeed. */
  readonly temporary: boolean;
  /**
   * Set on every error `Client.publish` (or `Subscription.publish`) rejects
   * with: the idempotency key that publish used (the app's, or the one the SDK generated). Publishing again
   * with it is safe: if an earlier attempt was applied, the server answers
   * with that result (`duplicate` = true) and delivers nothing twice.
   * Undefined for other commands.
   */
  readonly idempotencyKey: string | undefined;

  constructor(message: string, temporary: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SwitchboardError";
    this.temporary = temporary;
    this.idempotencyKey = undefined;
  }
}

/**
 * A copy of `error` (same class, message, stack and fields; a native error,
 * as the original) that carries `idempotencyKey`. A copy, because one error
 * object may reject several commands at once (e.g. every command in flight
 * when a connection drops), each publish with its own key.
 *
 * @internal
 */
export function withIdempotencyKey<E extends SwitchboardError>(error: E, idempotencyKey: string): E {
  // A native error with the original's prototype, made without running its
  // class's constructor; then every own field of the original, and the key.
  const copy = Reflect.construct(Error, [error.message], error.constructor) as E;
  Object.defineProperties(copy, Object.getOwnPropertyDescriptors(error));
  Object.defineProperty(copy, "idempotencyKey", { value: idempotencyKey });
  return copy;
}

/**
 * The server answered the command with an `Error` frame.
 * Match on `code` (an `ErrorCode`), never on the message. Two temporary codes
 * differ in what they say about the command's effect:
 * `ERROR_CODE_UNAVAILABLE` (the broker could not be reached: the command was
 * not carried out) and `ERROR_CODE_OUTCOME_UNKNOWN` (the broker took the
 * command but did not confirm it in time: it may or may not have taken
 * effect; retry a publish with the same idempotency key). `publish` retries
 * both on its own (see `ClientOptions.publishRetries`).
 */
export class ServerError extends SwitchboardError {
  /** What went wrong. */
  readonly code: ErrorCode;
  /** For `ERROR_CODE_RATE_LIMITED`: how long to wait before retrying. */
  readonly retryAfterMs: number;

  constructor(code: ErrorCode, message: string, temporary: boolean, retryAfterMs = 0) {
    super(`${errorCodeName(code)}: ${message}`, temporary);
    this.name = "ServerError";
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }

  /** The code's proto name, e.g. "ERROR_CODE_NOT_JOINED". */
  get codeName(): string {
    return errorCodeName(this.code);
  }
}

/**
 * No reply arrived within the command timeout (`commandTimeoutMs`): the
 * command may or may not have taken effect (retry a publish with the error's
 * `idempotencyKey` to be safe).
 */
export class TimeoutError extends SwitchboardError {
  /** The command that timed out, e.g. "publish". */
  readonly command: string;
  /** The timeout that elapsed. */
  readonly timeoutMs: number;

  constructor(command: string, timeoutMs: number) {
    super(`switchboard: ${command} timed out after ${timeoutMs} ms`, true);
    this.name = "TimeoutError";
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The connection was lost or closed before the reply arrived. With
 * `temporary` = true the client is reconnecting: the command may or may not
 * have taken effect (retry a publish with the error's `idempotencyKey` to be
 * safe). With `temporary` = false the client is closed for good.
 */
export class ConnectionError extends SwitchboardError {
  /** WebSocket close code, when one is known (1006: dropped without a close). */
  readonly closeCode: number | undefined;
  /** Close reason, when one is known. */
  readonly reason: string;

  constructor(
    message: string,
    temporary: boolean,
    closeCode?: number,
    reason = "",
    options?: { cause?: unknown },
  ) {
    super(message, temporary, options);
    this.name = "ConnectionError";
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** The proto name of an error code, e.g. "ERROR_CODE_NOT_JOINED". */
export function errorCodeName(code: ErrorCode): string {
  const name = ErrorCode[code] as string | undefined;
  return `ERROR_CODE_${name ?? String(code)}`;
}
