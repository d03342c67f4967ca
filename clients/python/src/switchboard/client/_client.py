"""The client: one WebSocket, its commands and pushes, and reconnects.

How a connection lives:

- `_open` dials, sends `connect`, then rejoins every subscribed room with
  `since` = the last position it delivered, and only then marks the client
  CONNECTED. Commands wait for that (`_wait_ready`), bounded by their timeout.
- One reader task per connection decodes frames and dispatches them in
  arrival order: replies resolve their command's future (join replies
  register the subscription first, so no live message can overtake them),
  pushes go to the subscription of their room or to the client's buffers.
  A `Subscribed` push (a backend subscribed the connection to a room through
  the server API) creates a subscription like `join` does, rejoined after
  reconnects like the others; `Unsubscribed` ends it like `leave`.
- When the reader ends, `_lost` settles what was in flight: commands that are
  safe to send again wait for the next connection, the others fail with
  `ConnectionLostError`. The supervisor task then reconnects with full-jitter
  backoff, or closes the client for good after a terminal close code.

`publish` gives every publish an idempotency key and sends it again after
`ERROR_CODE_UNAVAILABLE` or `ERROR_CODE_OUTCOME_UNKNOWN` (see `_publish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from switchboard.v1 import commands_pb2, envelope_pb2, errors_pb2, pushes_pb2, types_pb2

from ._backoff import Backoff
from ._buffer import Buffer, _End
from ._codes import ABNORMAL_CLOSURE, should_reconnect
from ._errors import (
    CommandTimeoutError,
    ConnectionClosedError,
    ConnectionLostError,
    ServerError,
    SwitchboardError,
)
from ._messages import (
    Content,
    DirectMessage,
    HistoryPage,
    Message,
    Notification,
    TypeRegistry,
    to_payload,
)
from ._publish import (
    DEFAULT_PUBLISH_RETRIES,
    PUBLISH_BACKOFF,
    is_retried,
    new_idempotency_key,
    outcome_unknown,
)
from ._subscription import GapCallback, Subscription

logger = logging.getLogger("switchboard.client")

#: The binary protobuf subprotocol; the only one this SDK speaks.
SUBPROTOCOL = "switchboard.v1.proto"

# Request ids are non-zero u32s.
_MAX_REQUEST_ID = 2**32 - 1
# How long closing waits for the server's Close frame.
_CLOSE_TIMEOUT = 2.0
# Largest frame accepted from the server: a full history page (1000 messages
# of up to 64 KiB) fits. The server is trusted; this only bounds memory.
_MAX_FRAME_SIZE = 128 * 1024 * 1024


class ConnectionState(enum.Enum):
    """Where the client is in its life."""

    #: Opening the first connection (inside `Client.connect`).
    CONNECTING = "connecting"
    #: Connected, authenticated, every room rejoined: commands flow.
    CONNECTED = "connected"
    #: The connection dropped; waiting for the next attempt. Commands wait.
    RECONNECTING = "reconnecting"
    #: Closed for good: by `close()`, a terminal close code or a refused
    #: login. Commands fail with `ConnectionClosedError`.
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class StateChange:
    """A connection state transition, as passed to state callbacks."""

    state: ConnectionState
    #: The close code that caused RECONNECTING or CLOSED (None: the
    #: connection failed without one, e.g. the server was unreachable).
    code: int | None = None
    #: The close reason or failure, for logs.
    reason: str = ""
    #: RECONNECTING: the number of the attempt about to be made (1, 2, ...).
    attempt: int = 0
    #: RECONNECTING: seconds before that attempt.
    delay: float = 0.0
    #: CLOSED: the error that ended the client (None after `close()`).
    error: BaseException | None = None


StateCallback = Callable[[StateChange], None]


@dataclass(eq=False)
class _Inflight:
    """A command sent on a connection, waiting for its reply."""

    #: The command's name, also the reply kind expected ("join", ...).
    command: str
    #: Resolved by the reader: the reply frame, or None for "the connection
    #: was lost and the command is safe to send again".
    future: asyncio.Future[envelope_pb2.ServerFrame | None]
    #: Whether the command may be sent again after a lost connection.
    retry: bool
    #: Runs in the reader, before any later frame is dispatched.
    on_reply: Callable[[envelope_pb2.ServerFrame], None] | None = None


@dataclass(frozen=True)
class _CloseInfo:
    """How a connection ended."""

    code: int | None
    reason: str
    reconnect: bool


class _Connection:
    """One WebSocket and the commands in flight on it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        #: Commands awaiting their reply, by request id.
        self.pending: dict[int, _Inflight] = {}
        #: False once the reader has seen the connection end.
        self.alive = True
        #: The server's Disconnect push, when one preceded the close.
        self.disconnect: pushes_pb2.Disconnect | None = None
        #: The reader task; its result says how the connection ended.
        self.reader: asyncio.Task[_CloseInfo] | None = None
        self._last_id = 0

    def register(self, inflight: _Inflight) -> int:
        """Gives `inflight` a request id unused on this connection."""
        if not self.alive:
            raise ConnectionLostError(inflight.command)
        while True:
            self._last_id = self._last_id % _MAX_REQUEST_ID + 1
            if self._last_id not in self.pending:
                break
        self.pending[self._last_id] = inflight
        return self._last_id

    def forget(self, request_id: int, inflight: _Inflight) -> None:
        if self.pending.get(request_id) is inflight:
            del self.pending[request_id]


class _Connecting:
    """What `Client.connect` returns: await it, or use it with `async with`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __await__(self) -> Generator[Any, None, Client]:
        return self._start().__await__()

    async def _start(self) -> Client:
        await self._client._start()
        return self._client

    async def __aenter__(self) -> Client:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.close()


class Client:
    """A Switchboard connection that reconnects on its own.

    Create one with `Client.connect(...)`; see its docs for the options.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        name: str | None = None,
        types: Iterable[type[ProtoMessage]] = (),
        command_timeout: float = 10.0,
        backoff: Backoff | None = None,
        buffer_size: int = 1024,
        max_in_flight: int = 1024,
        publish_retries: int = DEFAULT_PUBLISH_RETRIES,
        on_state_change: StateCallback | None = None,
    ) -> None:
        if command_timeout <= 0:
            raise ValueError("command_timeout must be positive")
        if publish_retries < 0:
            raise ValueError("publish_retries must not be negative")
        self._url = url
        self._credentials = commands_pb2.ConnectRequest(token=token or "", name=name or "")
        self._types = TypeRegistry(types)
        self._command_timeout = command_timeout
        self._backoff = backoff or Backoff()
        self._buffer_size = buffer_size
        # Bounds the commands waiting or in flight; callers beyond it wait.
        self._slots = asyncio.Semaphore(max_in_flight)
        self._publish_retries = publish_retries
        self._state = ConnectionState.CONNECTING
        self._callbacks: list[StateCallback] = [on_state_change] if on_state_change else []
        # The current connection; replaced by each successful reconnect.
        self._conn: _Connection | None = None
        # Set while CONNECTED (and once CLOSED, to wake waiting commands).
        self._ready = asyncio.Event()
        # Joined rooms (by `join` or a `Subscribed` push): rejoined after
        # every reconnect.
        self._subs: dict[str, Subscription] = {}
        # Subscriptions a backend made, for `server_subscriptions()`.
        self._server_subs: Buffer[Subscription] = Buffer(buffer_size)
        self._directs: Buffer[DirectMessage] = Buffer(buffer_size)
        self._notifications: Buffer[Notification] = Buffer(buffer_size)
        self._connect_reply = commands_pb2.ConnectReply()
        # When the current token expires (ms since the Unix epoch; 0: never).
        self._expires_at_ms = 0
        self._supervisor: asyncio.Task[None] | None = None
        # close() was called: nothing reconnects any more.
        self._closing = False
        self._final: StateChange | None = None
        self._closed = asyncio.Event()

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        name: str | None = None,
        types: Iterable[type[ProtoMessage]] = (),
        command_timeout: float = 10.0,
        backoff: Backoff | None = None,
        buffer_size: int = 1024,
        max_in_flight: int = 1024,
        publish_retries: int = DEFAULT_PUBLISH_RETRIES,
        on_state_change: StateCallback | None = None,
    ) -> _Connecting:
        """Connects to `url` (e.g. "ws://127.0.0.1:8080/ws").

        Use it as `client = await Client.connect(...)` or as
        `async with Client.connect(...) as client:` (which closes the client
        at the end). It returns once connected and authenticated, and raises
        `ServerError` if the login is refused, `ConnectionClosedError` if the
        server cannot be reached, `CommandTimeoutError` if it does not answer:
        the first connection is not retried. After that, the client
        reconnects on its own.

        - `token`: a JWT; or `name`: an anonymous user name (development
          mode servers only).
        - `types`: generated message classes to decode typed payloads into.
        - `command_timeout`: seconds each command (and each connection
          attempt) may take, including time spent waiting to reconnect.
        - `backoff`: reconnect delays (default: full jitter, 0.5 s to 20 s).
        - `buffer_size`: the bound of every receive buffer: each
          subscription's messages and presence events, and the client's
          direct messages and notifications.
        - `max_in_flight`: commands waiting or in flight at once; more wait.
        - `publish_retries`: how many times `publish` sends a publish again
          after `ERROR_CODE_UNAVAILABLE` or `ERROR_CODE_OUTCOME_UNKNOWN`
          (default 3; 0 turns the retries off). See `publish`.
        - `on_state_change`: called with every `StateChange`, from the first
          CONNECTING on.
        """
        return _Connecting(
            cls(
                url,
                token=token,
                name=name,
                types=types,
                command_timeout=command_timeout,
                backoff=backoff,
                buffer_size=buffer_size,
                max_in_flight=max_in_flight,
                publish_retries=publish_retries,
                on_state_change=on_state_change,
            )
        )

    # Properties and events.

    @property
    def state(self) -> ConnectionState:
        """The current connection state."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once the client is CLOSED."""
        return self._state is ConnectionState.CLOSED

    @property
    def user(self) -> str:
        """The authenticated user id."""
        return self._connect_reply.user

    @property
    def client_id(self) -> str:
        """The server's id of the current connection (changes on reconnect)."""
        return self._connect_reply.client

    @property
    def expires_at_ms(self) -> int:
        """When the token in use expires, in milliseconds since the Unix
        epoch (0: never, or no token): from the login, then from each
        successful `refresh`. Refresh before it, or the server closes the
        connection (1008) and the client is CLOSED."""
        return self._expires_at_ms

    @property
    def types(self) -> TypeRegistry:
        """The registered payload types."""
        return self._types

    def on_state_change(self, callback: StateCallback) -> Callable[[], None]:
        """Calls `callback` on every state change; returns a function that
        removes it. Callbacks run in the event loop and must not block."""
        self._callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove

    async def wait_closed(self) -> StateChange:
        """Waits until the client is CLOSED; returns that final change."""
        await self._closed.wait()
        assert self._final is not None
        return self._final

    async def direct_messages(self) -> AsyncIterator[DirectMessage]:
        """Direct messages to this user, in arrival order. Up to `buffer_size`
        wait for the app; beyond that the oldest are dropped. Ends when the
        client closes (raising `ConnectionClosedError` if the server closed it
        for good)."""
        while True:
            item = await self._directs.get()
            if isinstance(item, _End):
                return
            yield item

    async def notifications(self) -> AsyncIterator[Notification]:
        """Notifications from backends, to this user or a joined room;
        buffered and ended like `direct_messages`."""
        while True:
            item = await self._notifications.get()
            if isinstance(item, _End):
                return
            yield item

    async def server_subscriptions(self) -> AsyncIterator[Subscription]:
        """Subscriptions made by a backend through the server API (`PUT
        /api/v1/users/{user}/rooms/{room}`, `ServerApi.subscribe`), in
        arrival order: each is a `Subscription` like the one `join` returns,
        starting at the room's position when it was made, rejoined with
        `since` after reconnects, and ended by an `Unsubscribed` push (as by
        `leave`). A room the client already joined itself is not announced
        again: its subscription carries on. Up to `buffer_size` wait for the
        app; beyond that the oldest are dropped from this iterator (they
        stay subscribed: `client.leave(room)` leaves). Ends when the client
        closes, like `direct_messages`."""
        while True:
            item = await self._server_subs.get()
            if isinstance(item, _End):
                return
            yield item

    # Commands.

    async def join(
        self,
        room: str,
        *,
        since: types_pb2.StreamPosition | None = None,
        presence_events: bool = False,
        on_gap: GapCallback | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Joins `room`; iterate the returned `Subscription` for its messages.

        `since`: a saved `Subscription.position`; the messages after it are
        replayed first when the server still has them (`sub.recovered` says
        whether it did). `presence_events`: also receive `MemberJoined` /
        `MemberLeft` (see `Subscription.presence_events`). `on_gap`: called,
        in order with the messages, when some were skipped (see `Gap`).

        A room the connection is already a member of, by an earlier `join`
        or by a backend (see `server_subscriptions`), raises `ServerError`
        with `ERROR_CODE_ALREADY_JOINED`.
        """
        sub = Subscription(
            self,
            room,
            presence_events=presence_events,
            on_gap=on_gap,
            types=self._types,
            buffer_size=self._buffer_size,
        )
        request = commands_pb2.JoinRequest(room=room, presence_events=presence_events)
        if since is not None:
            request.since.CopyFrom(since)

        def joined(frame: envelope_pb2.ServerFrame) -> None:
            if self.closed:  # the reply raced close(): nothing will arrive
                sub._end(None if self._closing else self._closed_error())
                return
            self._subs[room] = sub
            sub._joined(frame.join, since)

        try:
            await self._command(
                "join",
                envelope_pb2.ClientFrame(join=request),
                retry=True,
                on_reply=joined,
                timeout=timeout,
            )
        except CommandTimeoutError:
            if self._subs.get(room) is sub:
                return sub  # the reply won the race against the timeout
            raise
        return sub

    async def leave(self, room: str, *, timeout: float | None = None) -> None:
        """Leaves `room` (as `Subscription.leave` does)."""
        sub = self._subs.get(room)
        if sub is not None:
            await self._leave_subscription(sub, timeout)
            return
        frame = envelope_pb2.ClientFrame(leave=commands_pb2.LeaveRequest(room=room))
        await self._command("leave", frame, retry=True, timeout=timeout)

    async def publish(
        self,
        room: str,
        content: Content,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> commands_pb2.PublishReply:
        """Publishes to a joined room; returns the acknowledgement (offset,
        epoch, id, `duplicate`).

        `content`: text, bytes, a `Payload`, or a generated message (sent as
        its bytes plus its full type name); anything else raises `TypeError`
        before anything is sent.

        Every publish carries an idempotency key: `idempotency_key`, or else
        a fresh one (`new_idempotency_key()`: 32 random hex characters). A
        publish answered `ERROR_CODE_UNAVAILABLE` (not carried out) or
        `ERROR_CODE_OUTCOME_UNKNOWN` (the broker may or may not have applied
        it) is sent again, with the same key, after a full-jitter delay
        (100 ms doubling up to 2 s), up to `publish_retries` times. If an
        earlier attempt was applied after all, the acknowledgement is that
        attempt's, with `duplicate` = True, and the message is delivered
        once. Each attempt is a command of its own, bounded by `timeout`.
        Other errors, timeouts and lost connections are not retried here;
        `close()` ends the retries with `ConnectionClosedError`.

        Every `SwitchboardError` it raises carries the key in
        `idempotency_key`: publish again with it to retry safely. Once an
        attempt's outcome was unknown, a later `ERROR_CODE_UNAVAILABLE` is
        reported as that attempt's `ERROR_CODE_OUTCOME_UNKNOWN`, which is
        still true of the publish as a whole.

        A publish with the app's own `idempotency_key` that a lost
        connection cut off is also sent again after the reconnect; with a
        generated key it fails with `ConnectionLostError`, as its outcome is
        unknown.
        """
        payload = to_payload(content)
        key = idempotency_key or new_idempotency_key()
        request = commands_pb2.PublishRequest(room=room, payload=payload, idempotency_key=key)
        try:
            return await self._publish(request, bool(idempotency_key), timeout)
        except SwitchboardError as e:
            e.idempotency_key = key
            raise

    async def direct(
        self, user: str, content: Content, *, timeout: float | None = None
    ) -> commands_pb2.DirectReply:
        """Sends `content` to every connection of `user`. Succeeds (and
        delivers nothing) when the user is not connected."""
        request = commands_pb2.DirectRequest(user=user, payload=to_payload(content))
        frame = await self._command(
            "direct", envelope_pb2.ClientFrame(direct=request), retry=False, timeout=timeout
        )
        return frame.direct

    async def history(
        self,
        room: str,
        *,
        limit: int = 0,
        before: int = 0,
        after: int = 0,
        timeout: float | None = None,
    ) -> HistoryPage:
        """Reads a page of `room`'s history (joining is not required).

        Without `after`: the newest `limit` messages older than `before`
        (0: no bound); page backwards by passing the smallest offset you have
        as `before`. With `after`: the oldest `limit` messages newer than it.
        `limit` 0 means the server's default page size.
        """
        request = commands_pb2.HistoryRequest(room=room, limit=limit, before=before, after=after)
        frame = await self._command(
            "history", envelope_pb2.ClientFrame(history=request), retry=True, timeout=timeout
        )
        reply = frame.history
        return HistoryPage(
            messages=[Message._from_proto(m, self._types) for m in reply.messages],
            position=reply.position,
            has_more=reply.has_more,
        )

    async def presence(self, room: str, *, timeout: float | None = None) -> list[types_pb2.Member]:
        """The connections present in `room` (joining is not required)."""
        frame = await self._command(
            "presence",
            envelope_pb2.ClientFrame(presence=commands_pb2.PresenceRequest(room=room)),
            retry=True,
            timeout=timeout,
        )
        return list(frame.presence.members)

    async def refresh(self, token: str, *, timeout: float | None = None) -> int:
        """Replaces the connection's token with `token` (a JWT for the same
        user, e.g. a fresh one shortly before `expires_at_ms`); returns its
        expiry in milliseconds since the Unix epoch (0: never).

        Once it succeeds, every later reconnect logs in with `token`. A token
        the server refuses (bad, expired, or for another user) raises
        `ServerError` (`ERROR_CODE_UNAUTHORIZED` or
        `ERROR_CODE_TOKEN_EXPIRED`), and the server then closes the connection
        with 1008: the client is CLOSED. Cut off by a lost connection, the
        refresh is sent again after the reconnect, which still logs in with
        the previous token.
        """
        credentials = commands_pb2.ConnectRequest(token=token)

        def refreshed(frame: envelope_pb2.ServerFrame) -> None:
            # In the reader, before any later frame: a reconnect that follows
            # already uses the new token.
            self._credentials = credentials
            self._expires_at_ms = frame.refresh.expires_at_ms

        frame = await self._command(
            "refresh",
            envelope_pb2.ClientFrame(refresh=commands_pb2.RefreshRequest(token=token)),
            retry=True,
            on_reply=refreshed,
            timeout=timeout,
        )
        return frame.refresh.expires_at_ms

    async def close(self) -> None:
        """Closes the connection (code 1000) for good. Subscriptions and event
        iterators end once their buffers are read; waiting commands fail with
        `ConnectionClosedError`. Idempotent."""
        if self._closing or self.closed:
            await self._closed.wait()
            return
        self._closing = True
        self._finish(1000, "client closed", None)
        supervisor, conn = self._supervisor, self._conn
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
        if conn is not None:
            if conn.alive:
                with contextlib.suppress(Exception):
                    await conn.ws.close()
            if conn.reader is not None:
                await asyncio.wait([conn.reader])
        if supervisor is not None:
            await asyncio.wait([supervisor])

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _drop_connection_for_testing(self) -> None:
        """Test hook, not API: aborts the TCP connection without a close
        handshake, as a network failure would, so tests can exercise the
        reconnect, rejoin-with-since and dedupe path against a real server."""
        conn = self._conn
        if conn is not None and conn.alive:
            conn.ws.transport.abort()

    # Commands, underneath.

    async def _command(
        self,
        command: str,
        frame: envelope_pb2.ClientFrame,
        *,
        retry: bool,
        on_reply: Callable[[envelope_pb2.ServerFrame], None] | None = None,
        timeout: float | None = None,
    ) -> envelope_pb2.ServerFrame:
        """Sends a command once connected and returns its reply, within the
        command timeout (which includes waiting for a reconnect)."""
        limit = self._command_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(self._run(command, frame, retry, on_reply), limit)
        except asyncio.TimeoutError:
            raise CommandTimeoutError(command, limit) from None

    async def _run(
        self,
        command: str,
        frame: envelope_pb2.ClientFrame,
        retry: bool,
        on_reply: Callable[[envelope_pb2.ServerFrame], None] | None,
    ) -> envelope_pb2.ServerFrame:
        async with self._slots:
            while True:
                conn = await self._wait_ready()
                reply = await self._send(conn, command, frame, retry, on_reply)
                if reply is not None:
                    return reply
                # The connection was lost first and the command is safe to
                # send again: wait for the next one.

    async def _send(
        self,
        conn: _Connection,
        command: str,
        frame: envelope_pb2.ClientFrame,
        retry: bool,
        on_reply: Callable[[envelope_pb2.ServerFrame], None] | None,
    ) -> envelope_pb2.ServerFrame | None:
        """Sends `frame` on `conn` and waits for the reply (None: lost)."""
        future: asyncio.Future[envelope_pb2.ServerFrame | None] = (
            asyncio.get_running_loop().create_future()
        )
        inflight = _Inflight(command, future, retry, on_reply)
        request_id = conn.register(inflight)
        try:
            frame.id = request_id
            # A failed send needs no handling here: the reader sees the
            # connection end too and settles `future` like any in flight.
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.send(frame.SerializeToString())
            return await future
        finally:
            conn.forget(request_id, inflight)

    async def _publish(
        self, request: commands_pb2.PublishRequest, resend: bool, timeout: float | None
    ) -> commands_pb2.PublishReply:
        """Sends `request`, and again while the answer is a retried broker
        error and retries are left. `resend`: also after a lost connection."""
        frame = envelope_pb2.ClientFrame(publish=request)
        # The last OUTCOME_UNKNOWN: from then on the publish may have been
        # applied, whatever later attempts say.
        unknown: SwitchboardError | None = None
        retry = 0
        while True:
            try:
                reply = await self._command("publish", frame, retry=resend, timeout=timeout)
            except SwitchboardError as e:
                if not is_retried(e):
                    raise
                error = e
            else:
                return reply.publish
            if outcome_unknown(error):
                unknown = error
            # After an OUTCOME_UNKNOWN, an UNAVAILABLE does not make the
            # publish's outcome known: report the former.
            failure = unknown or error
            if retry >= self._publish_retries:
                raise failure
            delay = PUBLISH_BACKOFF.delay(retry)
            logger.debug("switchboard: publish retry %d in %.3f s: %s", retry + 1, delay, error)
            if not await self._retry_pause(delay):
                raise self._closed_error() from failure
            retry += 1

    async def _retry_pause(self, delay: float) -> bool:
        """Waits `delay` seconds before a publish retry. False (at once) when
        the client is or becomes closed: no retry then."""
        if not (self._closing or self.closed):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)
        return not (self._closing or self.closed)

    async def _call(
        self,
        conn: _Connection,
        command: str,
        frame: envelope_pb2.ClientFrame,
        on_reply: Callable[[envelope_pb2.ServerFrame], None] | None = None,
    ) -> envelope_pb2.ServerFrame:
        """A command of the connection handshake: on `conn`, not waiting for
        CONNECTED, failing if the connection is lost."""
        try:
            reply = await asyncio.wait_for(
                self._send(conn, command, frame, False, on_reply), self._command_timeout
            )
        except asyncio.TimeoutError:
            raise CommandTimeoutError(command, self._command_timeout) from None
        if reply is None:  # not reached: handshake commands are never retried
            raise ConnectionLostError(command)
        return reply

    async def _wait_ready(self) -> _Connection:
        while True:
            if self.closed:
                raise self._closed_error()
            conn = self._conn
            if self._state is ConnectionState.CONNECTED and conn is not None and conn.alive:
                return conn
            # Not usable yet: the set flag is stale (the reader ended and the
            # supervisor has not run); wait for the next connection.
            self._ready.clear()
            await self._ready.wait()

    def _closed_error(self) -> ConnectionClosedError:
        final = self._final
        if final is None:
            return ConnectionClosedError(None, "client closed")
        error = ConnectionClosedError(final.code, final.reason)
        error.__cause__ = final.error
        return error

    async def _leave_subscription(self, sub: Subscription, timeout: float | None) -> None:
        if self._subs.get(sub.room) is sub:
            del self._subs[sub.room]
        was_active = sub.active
        sub._end(None)
        if not was_active or self._state is not ConnectionState.CONNECTED:
            return  # not joined on any live connection: it will not be rejoined
        frame = envelope_pb2.ClientFrame(leave=commands_pb2.LeaveRequest(room=sub.room))
        try:
            await self._command("leave", frame, retry=False, timeout=timeout)
        except (ConnectionLostError, ConnectionClosedError):
            pass  # the connection is gone, and the room with it
        except ServerError as e:
            if e.code != errors_pb2.ERROR_CODE_NOT_JOINED:
                raise

    # The connection's life.

    async def _start(self) -> None:
        self._emit(StateChange(ConnectionState.CONNECTING))
        try:
            conn = await self._open()
        except (ServerError, CommandTimeoutError) as e:
            self._finish(None, str(e), e)
            raise
        except asyncio.CancelledError:
            self._finish(None, "connect cancelled", None)
            raise
        except Exception as e:
            error = ConnectionClosedError(None, f"cannot connect to {self._url}: {e}")
            self._finish(None, str(error), error)
            raise error from e
        self._supervisor = asyncio.create_task(self._supervise(conn))

    async def _open(self) -> _Connection:
        """Dials, authenticates and rejoins every room; then CONNECTED."""
        ws = await ws_connect(
            self._url,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            open_timeout=self._command_timeout,
            close_timeout=_CLOSE_TIMEOUT,
            max_size=_MAX_FRAME_SIZE,
        )
        conn = _Connection(ws)
        conn.reader = asyncio.create_task(self._read(conn))
        try:
            if ws.subprotocol != SUBPROTOCOL:
                raise SwitchboardError(f"server did not accept subprotocol {SUBPROTOCOL}")
            connect = envelope_pb2.ClientFrame(connect=self._credentials)
            reply = await self._call(conn, "connect", connect)
            self._connect_reply = reply.connect
            self._expires_at_ms = reply.connect.expires_at_ms
            await self._rejoin(conn)
        except BaseException:
            await self._abandon(conn)
            raise
        if self._closing:
            await self._abandon(conn)
            raise ConnectionClosedError(1000, "client closed")
        if not conn.alive:  # lost right after the handshake: try again
            raise ConnectionLostError("connect")
        self._conn = conn
        self._emit(StateChange(ConnectionState.CONNECTED))
        self._ready.set()
        return conn

    async def _rejoin(self, conn: _Connection) -> None:
        """Rejoins every subscribed room with `since` = its position."""
        subs = list(self._subs.values())

        async def rejoin(sub: Subscription) -> None:
            frame = envelope_pb2.ClientFrame(join=sub._join_request())
            await self._call(conn, "join", frame, lambda reply: sub._rejoined(reply.join))

        results = await asyncio.gather(*(rejoin(s) for s in subs), return_exceptions=True)
        for sub, result in zip(subs, results, strict=True):
            if (
                isinstance(result, ServerError)
                and result.code == errors_pb2.ERROR_CODE_ALREADY_JOINED
            ):
                # A backend subscribed this connection to the room first: the
                # reader already handed its `Subscribed` push to `sub`.
                result = None
            if isinstance(result, ServerError) and not result.temporary:
                # This room cannot be rejoined (e.g. access was revoked).
                logger.warning("switchboard: cannot rejoin %r: %s", sub.room, result)
                if self._subs.get(sub.room) is sub:
                    del self._subs[sub.room]
                sub._end(result)
            elif isinstance(result, BaseException):
                raise result
            elif self._subs.get(sub.room) is not sub:
                # Left while it was being rejoined: leave it on this connection.
                leave = envelope_pb2.ClientFrame(leave=commands_pb2.LeaveRequest(room=sub.room))
                with contextlib.suppress(SwitchboardError):
                    await self._call(conn, "leave", leave)

    async def _abandon(self, conn: _Connection) -> None:
        """Closes a connection that will not be used, and waits for its reader."""
        if conn.alive:
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if conn.reader is not None:
            await asyncio.wait([conn.reader])

    async def _supervise(self, conn: _Connection) -> None:
        """Reconnects after every lost connection, until a terminal close."""
        try:
            while True:
                assert conn.reader is not None
                info = await conn.reader
                if self._closing:
                    return
                if not info.reconnect:
                    error = ConnectionClosedError(info.code, info.reason)
                    self._finish(info.code, info.reason, error)
                    return
                next_conn = await self._reconnect(info)
                if next_conn is None:
                    return
                conn = next_conn
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug; never leave the client hanging
            logger.exception("switchboard: connection supervisor failed")
            self._finish(None, str(e), e)

    async def _reconnect(self, info: _CloseInfo) -> _Connection | None:
        code, reason = info.code, info.reason
        attempt = 0
        while True:
            delay = self._backoff.delay(attempt)
            attempt += 1
            self._emit(StateChange(ConnectionState.RECONNECTING, code, reason, attempt, delay))
            await asyncio.sleep(delay)
            try:
                return await self._open()
            except ServerError as e:
                # A refused login is terminal (e.g. the token expired: retrying
                # cannot help), except "too many connections for this user",
                # which the server closes with 1013: try again later.
                if not e.temporary and e.code != errors_pb2.ERROR_CODE_LIMIT_EXCEEDED:
                    self._finish(None, str(e), e)
                    return None
                code, reason = None, str(e)
            except ConnectionClosedError as e:
                if self._closing:
                    return None
                code, reason = e.code, str(e)
            except (OSError, asyncio.TimeoutError, SwitchboardError, ConnectionClosed) as e:
                code, reason = None, str(e)
            except Exception as e:  # e.g. an HTTP error from a proxy while the server restarts
                code, reason = None, str(e)
            logger.info("switchboard: reconnect attempt %d failed: %s", attempt, reason)

    async def _read(self, conn: _Connection) -> _CloseInfo:
        """Dispatches every frame of `conn` until it ends."""
        code: int | None = ABNORMAL_CLOSURE
        reason = ""
        try:
            while True:
                data = await conn.ws.recv()
                if isinstance(data, str):
                    logger.warning("switchboard: ignoring a text frame on the binary protocol")
                    continue
                try:
                    frame = envelope_pb2.ServerFrame.FromString(data)
                except DecodeError:
                    logger.warning("switchboard: ignoring an undecodable frame")
                    continue
                self._dispatch(conn, frame)
        except ConnectionClosed as e:
            if e.rcvd is not None:
                code, reason = e.rcvd.code, e.rcvd.reason
        except Exception:
            logger.exception("switchboard: dispatch failed; dropping the connection")
            conn.ws.transport.abort()
        finally:
            self._lost(conn)
        disconnect = conn.disconnect
        if disconnect is not None:
            return _CloseInfo(
                disconnect.code or code, disconnect.reason or reason, disconnect.reconnect
            )
        return _CloseInfo(code, reason, should_reconnect(code))

    def _lost(self, conn: _Connection) -> None:
        """Settles what was in flight on a connection that ended."""
        conn.alive = False
        if self._conn is conn and not self.closed:
            self._ready.clear()
        pending = list(conn.pending.values())
        conn.pending.clear()
        for inflight in pending:
            if inflight.future.done():
                continue
            if self._closing:
                inflight.future.set_exception(self._closed_error())
            elif inflight.retry:
                inflight.future.set_result(None)
            else:
                inflight.future.set_exception(ConnectionLostError(inflight.command))

    def _dispatch(self, conn: _Connection, frame: envelope_pb2.ServerFrame) -> None:
        kind = frame.WhichOneof("kind")
        if frame.id != 0:
            inflight = conn.pending.pop(frame.id, None)
            if inflight is None or inflight.future.done():
                return  # its command timed out
            if kind == "error":
                error = ServerError._from_proto(frame.error, inflight.command)
                inflight.future.set_exception(error)
            elif kind != inflight.command:
                inflight.future.set_exception(
                    SwitchboardError(f"{inflight.command} got a {kind} reply")
                )
            else:
                if inflight.on_reply is not None:
                    inflight.on_reply(frame)
                inflight.future.set_result(frame)
            return
        if kind == "message":
            sub = self._subs.get(frame.message.room)
            if sub is not None:
                sub._deliver(frame.message)
        elif kind == "member_joined":
            sub = self._subs.get(frame.member_joined.room)
            if sub is not None:
                sub._presence_event(frame.member_joined)
        elif kind == "member_left":
            sub = self._subs.get(frame.member_left.room)
            if sub is not None:
                sub._presence_event(frame.member_left)
        elif kind == "direct_message":
            message = DirectMessage._from_proto(frame.direct_message, self._types)
            self._directs.push_drop_oldest(message)
        elif kind == "notification":
            notification = Notification._from_proto(frame.notification, self._types)
            self._notifications.push_drop_oldest(notification)
        elif kind == "subscribed":
            self._subscribed(frame.subscribed)
        elif kind == "unsubscribed":
            sub = self._subs.pop(frame.unsubscribed.room, None)
            if sub is not None:
                sub._end(None)
        elif kind == "disconnect":
            conn.disconnect = frame.disconnect
        elif kind == "error":
            logger.warning("switchboard: the server rejected a frame: %s", frame.error.message)
        # Any other kind is from a newer protocol: ignored.

    def _subscribed(self, push: pushes_pb2.Subscribed) -> None:
        """A backend made the connection a member of `push.room`."""
        if self.closed:
            return
        sub = self._subs.get(push.room)
        if sub is not None:
            # Joined already, and the join on this connection is still on its
            # way (a rejoin after a reconnect; it will be ALREADY_JOINED):
            # keep the subscription, announced or not.
            sub._resubscribed(push.position)
            return
        sub = Subscription(
            self,
            push.room,
            presence_events=push.presence_events,
            on_gap=None,
            types=self._types,
            buffer_size=self._buffer_size,
        )
        sub._subscribed(push.position)
        self._subs[push.room] = sub
        self._server_subs.push_drop_oldest(sub)

    def _emit(self, change: StateChange) -> None:
        self._state = change.state
        for callback in list(self._callbacks):
            try:
                callback(change)
            except Exception:
                logger.exception("switchboard: state callback failed")

    def _finish(self, code: int | None, reason: str, error: BaseException | None) -> None:
        """Enters CLOSED for good: wakes waiting commands, ends iterators."""
        if self.closed:
            return
        change = StateChange(ConnectionState.CLOSED, code, reason, error=error)
        self._final = change
        self._state = ConnectionState.CLOSED
        self._ready.set()
        end_error = None if self._closing else self._closed_error()
        for sub in self._subs.values():
            sub._end(end_error)
        self._subs.clear()
        self._directs.close(end_error)
        self._notifications.close(end_error)
        self._server_subs.close(end_error)
        self._closed.set()
        self._emit(change)
