"""Which WebSocket close codes end a client for good."""

from __future__ import annotations

# Reconnect after these, as `close_codes.proto` documents: going away (1001),
# protocol error (1002, e.g. a broken intermediary), no status (1005),
# abnormal closure (1006), internal error, restart, try again later and bad
# gateway (1011-1014).
_RECONNECT = frozenset({1001, 1002, 1005, 1006, 1011, 1012, 1013, 1014})

#: Close code reported when the connection ended without a Close frame.
ABNORMAL_CLOSURE = 1006


def should_reconnect(code: int | None) -> bool:
    """Whether a connection closed with `code` (None: no close frame at all)
    should be reconnected, when no `Disconnect` push said otherwise.

    Reconnect: network failures (no close, 1005, 1006), 1001, 1002,
    1011-1014 (1013: overloaded, or too many connections for this user) and
    the application range 4000-4499 (e.g. 4003: sustained rate-limit
    violations). Terminal: 1000, 1003, 1007, 1008 (authentication, expired
    token), 1009, 4500-4999 and any other code.
    """
    if code is None or code in _RECONNECT:
        return True
    return 4000 <= code <= 4499
