"""Safe publishing: the idempotency key a publish carries when the app gives
none, and which failures `Client.publish` retries on its own, and how far
apart.

Every publish carries a key, so sending it again can never deliver it twice:
the server answers a repeated key with the first attempt's acknowledgement
(`duplicate` = True). The client sends a publish again only when the server
said the broker did not carry it out (`ERROR_CODE_UNAVAILABLE`) or did not
confirm it (`ERROR_CODE_OUTCOME_UNKNOWN`). A timeout or a lost connection
may hide a slow server or a long outage: retrying those is the app's call,
with the key the error carries.
"""

from __future__ import annotations

import secrets

from switchboard.v1 import errors_pb2

from ._backoff import Backoff
from ._errors import ServerError, SwitchboardError

#: Default of the client's `publish_retries`.
DEFAULT_PUBLISH_RETRIES = 3

#: Delays between publish retries: full jitter, 100 ms doubling up to 2 s.
PUBLISH_BACKOFF = Backoff(initial=0.1, maximum=2.0)

_RETRIED_CODES = frozenset(
    {errors_pb2.ERROR_CODE_UNAVAILABLE, errors_pb2.ERROR_CODE_OUTCOME_UNKNOWN}
)


def new_idempotency_key() -> str:
    """A fresh idempotency key: 128 random bits from the OS's CSPRNG as 32
    lowercase hex characters. `Client.publish` uses one when the app gives
    none; an app that records what it is about to send (an outbox) can make
    its own with it."""
    return secrets.token_hex(16)


def is_retried(error: SwitchboardError) -> bool:
    """Whether `Client.publish` sends a publish again after `error`."""
    return isinstance(error, ServerError) and error.code in _RETRIED_CODES


def outcome_unknown(error: SwitchboardError) -> bool:
    """Whether `error` says the broker may have applied the publish."""
    return isinstance(error, ServerError) and error.code == errors_pb2.ERROR_CODE_OUTCOME_UNKNOWN
