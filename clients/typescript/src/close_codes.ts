import { CloseCode } from "./gen/switchboard/v1/close_codes_pb.js";

/** Close code reported when the connection dropped without a close handshake. */
export const CLOSE_ABNORMAL = 1006;

/**
 * Whether a connection closed with `code` should be re-established.
 *
 * Reconnect, as `close_codes.proto` documents: a network failure (1006, or
 * no code), 1001 (server going away), 1002 (protocol error, e.g. a broken
 * intermediary), 1011 (internal error), 1012 (restart), 1013 (try again
 * later), 1014 (bad gateway) and the application range 4000-4499. Never:
 * 1000 (normal), 1003, 1007, 1008 (authentication or token), 1009,
 * 4500-4999, and anything else unknown. A `Disconnect` push that preceded
 * the close overrides this table with its `reconnect` flag.
 */
export function shouldReconnect(code: number | undefined): boolean {
  if (code === undefined || RECONNECT.has(code)) {
    return true;
  }
  return code >= 4000 && code <= 4499;
}

/** Codes below 4000 after which a client reconnects (1005: closed without a status). */
const RECONNECT = new Set<number>([
  CLOSE_ABNORMAL,
  1005,
  CloseCode.GOING_AWAY,
  CloseCode.PROTOCOL_ERROR,
  CloseCode.INTERNAL_ERROR,
  1012, // service restart
  CloseCode.TRY_AGAIN_LATER,
  1014, // bad gateway
]);
