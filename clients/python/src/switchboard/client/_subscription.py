"""A joined room: its messages, in order, once each."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING

from switchboard.v1 import commands_pb2, pushes_pb2, types_pb2

from ._buffer import Buffer, _End
from ._messages import Gap, GapReason, Message, TypeRegistry

if TYPE_CHECKING:
    from ._client import Client

#: Called with every gap, in order with the messages (see `Client.join`).
GapCallback = Callable[[Gap], Awaitable[None] | None]
#: A presence event of a room joined with `presence_events=True`.
PresenceEvent = pushes_pb2.MemberJoined | pushes_pb2.MemberLeft


class Subscription:
    """A joined room: joined by `Client.join`, or by a backend through the
    server API (see `Client.server_subscriptions`). Iterate it for the
    room's messages:

        async for msg in sub:
            print(msg.offset, msg.sender, msg.text, msg.value)

    Messages arrive in offset order, each once, across reconnects. Up to the
    client's `buffer_size` of them wait here for the app; when the app falls
    that far behind, newer messages are dropped and a `Gap` (reason
    OVERFLOW) is reported at that point, and the same goes for a reconnect
    that could not recover what was missed (reason RECOVERY_FAILED). Gaps go
    to the `on_gap` callback given to `join`, which the iterator calls (and
    awaits) in order, between the messages before and after the gap.

    Iteration ends after `leave()`, an `Unsubscribed` push (a backend took
    the connection out of the room) or `Client.close()` once the buffered
    messages are read; after the server closed the client for good, or
    refused to rejoin the room after a reconnect, it raises that error
    instead.
    """

    def __init__(
        self,
        client: Client,
        room: str,
        *,
        presence_events: bool,
        on_gap: GapCallback | None,
        types: TypeRegistry,
        buffer_size: int,
    ) -> None:
        #: The room's name.
        self.room = room
        #: With an explicit `since` on join: whether the server replayed what
        #: was missed. None when `since` was not given.
        self.recovered: bool | None = None
        self._client = client
        self._presence_events = presence_events
        self._on_gap = on_gap
        self._types = types
        self._items: Buffer[Message | Gap] = Buffer(buffer_size)
        self._presence: Buffer[PresenceEvent] = Buffer(buffer_size)
        # Position of the last message handed to the buffer (or skipped by a
        # gap): the dedupe bound and the `since` of the next rejoin.
        self._offset = 0
        self._epoch = ""
        self._active = True

    @property
    def position(self) -> types_pb2.StreamPosition:
        """Offset and epoch of the last message delivered (or skipped). Save
        it to resume later with `join(room, since=position)`."""
        return types_pb2.StreamPosition(offset=self._offset, epoch=self._epoch)

    @property
    def active(self) -> bool:
        """True until the room is left or the client is closed."""
        return self._active

    @property
    def presence_events_enabled(self) -> bool:
        """Whether the room was joined with `presence_events=True` (for a
        server-side subscription: whether the backend asked for them)."""
        return self._presence_events

    @property
    def on_gap(self) -> GapCallback | None:
        """The gap callback: the `on_gap` given to `join`. A server-side
        subscription starts without one; set it before iterating."""
        return self._on_gap

    @on_gap.setter
    def on_gap(self, callback: GapCallback | None) -> None:
        self._on_gap = callback

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        while True:
            item = await self._items.get()
            if isinstance(item, _End):
                raise StopAsyncIteration
            if isinstance(item, Gap):
                if self._on_gap is not None:
                    result = self._on_gap(item)
                    if inspect.isawaitable(result):
                        await result
                continue
            return item

    async def presence_events(self) -> AsyncIterator[PresenceEvent]:
        """`MemberJoined` / `MemberLeft` events of the room, in order (only
        when joined with `presence_events=True`). Bounded like the message
        buffer; on overflow the oldest events are dropped."""
        while True:
            event = await self._presence.get()
            if isinstance(event, _End):
                return
            yield event

    async def leave(self, *, timeout: float | None = None) -> None:
        """Leaves the room. Iteration ends once the buffer is read."""
        if self._active:
            await self._client._leave_subscription(self, timeout)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._active and not self._client.closed:
            await self.leave()

    # The client's reader calls the methods below, one frame at a time.

    def _join_request(self) -> commands_pb2.JoinRequest:
        """The `join` that resumes this subscription on a new connection."""
        return commands_pb2.JoinRequest(
            room=self.room,
            since=types_pb2.StreamPosition(offset=self._offset, epoch=self._epoch),
            presence_events=self._presence_events,
        )

    def _joined(
        self, reply: commands_pb2.JoinReply, since: types_pb2.StreamPosition | None
    ) -> None:
        """The first join's reply."""
        if since is not None:
            self.recovered = reply.recovered
        if since is not None and reply.recovered:
            self._offset, self._epoch = since.offset, since.epoch
            for m in reply.messages:
                self._deliver(m)
        else:
            self._offset, self._epoch = reply.position.offset, reply.position.epoch

    def _subscribed(self, position: types_pb2.StreamPosition) -> None:
        """A backend subscribed the connection (a `Subscribed` push): the
        room's messages after `position` follow."""
        self._offset, self._epoch = position.offset, position.epoch

    def _resubscribed(self, position: types_pb2.StreamPosition) -> None:
        """A `Subscribed` push for this room while its rejoin was on its way
        (the rejoin then fails with ERROR_CODE_ALREADY_JOINED): messages
        continue after `position`, and what lies between is reported as a
        gap."""
        if position.epoch == self._epoch and position.offset <= self._offset:
            return  # nothing missed: older offsets are dropped as duplicates
        self._restart(position)

    def _rejoined(self, reply: commands_pb2.JoinReply) -> None:
        """The reply to the join that resumed after a reconnect."""
        if reply.recovered:
            for m in reply.messages:
                self._deliver(m)
            return
        self._restart(reply.position)

    def _restart(self, position: types_pb2.StreamPosition) -> None:
        """What was missed cannot be replayed: a RECOVERY_FAILED gap, then
        live messages after `position`."""
        copy = types_pb2.StreamPosition()
        copy.CopyFrom(position)
        gap = Gap(self.room, GapReason.RECOVERY_FAILED, self._offset, self._epoch, copy)
        self._offset, self._epoch = position.offset, position.epoch
        self._items.push(gap)

    def _deliver(self, m: pushes_pb2.RoomMessage) -> None:
        if m.offset <= self._offset:
            return  # already delivered: replay and live overlap after a reconnect
        previous, self._offset = self._offset, m.offset
        if not self._items.full():
            self._items.push(Message._from_proto(m, self._types))
            return
        # Full: drop, and mark the spot once (one slot beyond the capacity).
        last = self._items.last()
        if not (isinstance(last, Gap) and last.reason is GapReason.OVERFLOW):
            self._items.push(Gap(self.room, GapReason.OVERFLOW, previous, self._epoch))

    def _presence_event(self, event: PresenceEvent) -> None:
        self._presence.push_drop_oldest(event)

    def _end(self, error: BaseException | None) -> None:
        self._active = False
        self._items.close(error)
        self._presence.close(error)
