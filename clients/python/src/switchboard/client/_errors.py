"""The exceptions the SDK raises. Every one derives from `SwitchboardError`."""

from __future__ import annotations

from switchboard.v1 import errors_pb2


class SwitchboardError(Exception):
    """Base class of every error raised by the Switchboard SDK."""

    #: Set on every error `Client.publish` raises: the idempotency key that
    #: publish carried (the app's, or the one the client generated). Publishing
    #: again with it is safe: if an earlier attempt was applied, the server
    #: answers with that attempt's acknowledgement (`duplicate` = True) and
    #: delivers nothing twice. None for other commands.
    idempotency_key: str | None = None


class ServerError(SwitchboardError):
    """The server answered a command with an `Error`.

    `code` is a `switchboard.v1.ErrorCode` value (compare it with e.g.
    `ErrorCode.ERROR_CODE_NOT_JOINED`); `temporary` tells whether the same
    command may succeed if retried later; `retry_after_ms` is, for
    `ERROR_CODE_RATE_LIMITED`, how many milliseconds to wait before retrying
    (0 otherwise).

    Two temporary codes differ in what they say about the command's effect:
    `ERROR_CODE_UNAVAILABLE` (the broker could not be reached: the command
    was not carried out) and `ERROR_CODE_OUTCOME_UNKNOWN` (the broker took
    the command but did not confirm it in time: it may or may not have taken
    effect; publish again with the error's `idempotency_key`).
    `Client.publish` retries both on its own (its `publish_retries` option).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        temporary: bool = False,
        retry_after_ms: int = 0,
        command: str = "",
    ) -> None:
        self.code = code
        self.message = message
        self.temporary = temporary
        self.retry_after_ms = retry_after_ms
        self.command = command
        super().__init__(self._describe())

    @property
    def code_name(self) -> str:
        """The code's name, e.g. "ERROR_CODE_NOT_JOINED"."""
        try:
            return errors_pb2.ErrorCode.Name(self.code)
        except ValueError:
            return f"ERROR_CODE_{self.code}"

    @classmethod
    def _from_proto(cls, error: errors_pb2.Error, command: str) -> ServerError:
        return cls(
            error.code,
            error.message,
            temporary=error.temporary,
            retry_after_ms=error.retry_after_ms,
            command=command,
        )

    def _describe(self) -> str:
        kind = "temporary" if self.temporary else "terminal"
        prefix = f"{self.command} failed: " if self.command else ""
        return f"{prefix}{self.code_name} ({kind}): {self.message}"


class CommandTimeoutError(SwitchboardError, TimeoutError):
    """A command got no reply within its timeout (including any time spent
    waiting for the connection to come back). It may or may not have taken
    effect: publish again with the error's `idempotency_key` to be safe."""

    def __init__(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        super().__init__(f"{command} timed out after {timeout:g} s")


class ConnectionClosedError(SwitchboardError):
    """The client is closed, or could not connect: no command can run.

    `code` is the WebSocket close code when one is known (1000 after
    `Client.close()`, 1008 after an authentication failure, ...), None when
    the connection could not be opened at all.
    """

    def __init__(self, code: int | None, reason: str) -> None:
        self.code = code
        self.reason = reason
        text = f"connection closed ({code})" if code is not None else "connection failed"
        super().__init__(f"{text}: {reason}" if reason else text)


class ConnectionLostError(SwitchboardError):
    """The connection dropped while this command was in flight, and the
    command is not safe to send again: it may or may not have taken effect.

    Only `publish` without an app's idempotency key and `direct` raise it;
    from `publish`, it carries the generated key in `idempotency_key`: publish
    again with it. Give a publish an `idempotency_key` and the SDK resends it
    after reconnecting instead.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        super().__init__(f"connection lost while {command} was in flight; its outcome is unknown")
