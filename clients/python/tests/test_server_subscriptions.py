"""Server-side subscriptions: a backend subscribes a user's connections to a
room through the HTTP API (`ServerApi.subscribe`, `PUT
/api/v1/users/{user}/rooms/{room}`) and the client surfaces them through
`Client.server_subscriptions()`, against real server processes in
development mode (the API is open without a key)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chat.v1 import chat_pb2
from switchboard.client import (
    Backoff,
    Client,
    ConnectionState,
    ErrorCode,
    Gap,
    GapReason,
    Message,
    ServerApi,
    ServerError,
    StateChange,
    StreamPosition,
    Subscription,
)
from switchboard.v1 import envelope_pb2, pushes_pb2

from conftest import Server

Connect = Callable[..., Awaitable[Client]]
WAIT = 10.0
# Long enough that what the test publishes meanwhile is surely missed by the
# dropped connection, and has to come back through the rejoin with `since`.
AWAY = 1.0


class FixedBackoff(Backoff):
    """Waits `maximum` seconds before every reconnect attempt (no jitter)."""

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return self.maximum


class States:
    """Records a client's state changes; waits for one."""

    def __init__(self) -> None:
        self.changes: list[StateChange] = []
        self._event = asyncio.Event()

    def __call__(self, change: StateChange) -> None:
        self.changes.append(change)
        self._event.set()

    async def wait_for(self, state: ConnectionState, after: int = 0) -> int:
        """The index of the first change to `state` from `after` on."""

        async def find() -> int:
            while True:
                for i, change in enumerate(self.changes[after:], after):
                    if change.state is state:
                        return i
                self._event.clear()
                await self._event.wait()

        return await asyncio.wait_for(find(), WAIT)


@pytest.fixture
async def api(server: Server) -> AsyncIterator[ServerApi]:
    async with ServerApi(server.http_url, encoding="json") as client:
        yield client


async def next_subscription(client: Client) -> Subscription:
    return await asyncio.wait_for(anext(client.server_subscriptions()), WAIT)


async def next_message(sub: Subscription) -> Message:
    return await asyncio.wait_for(sub.__anext__(), WAIT)


async def assert_no_message(sub: Subscription, wait: float = 0.3) -> None:
    try:
        msg = await asyncio.wait_for(sub.__anext__(), wait)
    except asyncio.TimeoutError:
        return
    pytest.fail(f"unexpected message {msg}")


async def members(client: Client, room: str) -> list[tuple[str, str]]:
    return sorted((m.user, m.client) for m in await client.presence(room))


async def test_subscribed_push_hands_over_a_subscription_that_gets_the_rooms_messages(
    api: ServerApi, connect: Connect
) -> None:
    first = await api.publish("news", "before")  # not for the subscription
    alice = await connect("alice", types=[chat_pb2.ChatMessage])
    await api.subscribe("alice", "news")
    sub = await next_subscription(alice)
    assert isinstance(sub, Subscription)
    assert (sub.room, sub.active, sub.recovered) == ("news", True, None)
    assert sub.position == StreamPosition(offset=1, epoch=first.epoch)
    assert not sub.presence_events_enabled
    assert await members(alice, "news") == [("alice", alice.client_id)]

    ack = await api.publish("news", "hello", sender="newsroom")
    msg = await next_message(sub)
    assert (msg.room, msg.offset, msg.id, msg.sender, msg.text) == (
        "news",
        2,
        ack.id,
        "newsroom",
        "hello",
    )
    # Typed payloads decode as on a joined room; the client may publish too.
    chat = chat_pb2.ChatMessage(text="typed", tags=["api"])
    await api.publish("news", chat)
    own = await alice.publish("news", "from alice")
    typed = await next_message(sub)
    assert (typed.offset, typed.type_name) == (3, "chat.v1.ChatMessage")
    assert typed.value_as(chat_pb2.ChatMessage) == chat
    mine = await next_message(sub)
    assert (mine.offset, mine.sender, mine.text) == (own.offset, "alice", "from alice")
    assert sub.position == StreamPosition(offset=4, epoch=first.epoch)
    await assert_no_message(sub)


async def test_subscriptions_are_announced_in_order_once_per_room(
    api: ServerApi, connect: Connect
) -> None:
    alice = await connect("alice")
    own = await alice.join("mine")
    await api.subscribe("alice", "mine")  # already a member: nothing changes
    await api.subscribe("alice", "first")
    await api.subscribe("alice", "first")  # again: nothing changes
    await api.subscribe("alice", "second")
    announced = alice.server_subscriptions()
    rooms = [(await asyncio.wait_for(anext(announced), WAIT)).room for _ in range(2)]
    assert rooms == ["first", "second"]

    # The room the client joined itself keeps its own subscription.
    ack = await api.publish("mine", "still here")
    msg = await next_message(own)
    assert (msg.offset, msg.text) == (ack.offset, "still here")
    # A join of a room the connection is already in is refused, whoever
    # joined it.
    for room in ("mine", "first"):
        with pytest.raises(ServerError) as refused:
            await alice.join(room)
        assert refused.value.code == ErrorCode.ERROR_CODE_ALREADY_JOINED


async def test_unsubscribed_ends_the_subscription_and_a_later_join_works(
    api: ServerApi, connect: Connect
) -> None:
    alice = await connect("alice")
    await api.subscribe("alice", "news")
    sub = await next_subscription(alice)
    await api.publish("news", "m1")
    await api.unsubscribe("alice", "news")
    # The buffered message first, then the iteration ends.
    assert [m.text async for m in sub] == ["m1"]
    assert not sub.active
    assert await members(alice, "news") == []

    joined = await alice.join("news")
    assert joined is not sub
    ack = await api.publish("news", "m2")
    msg = await next_message(joined)
    assert (msg.offset, msg.text) == (ack.offset, "m2")
    with pytest.raises(StopAsyncIteration):
        await sub.__anext__()

    # Unsubscribed ends a room the client joined itself just the same.
    await api.unsubscribe("alice", "news")
    assert [m.text async for m in joined] == []
    assert not joined.active


async def test_leave_ends_a_server_side_subscription(api: ServerApi, connect: Connect) -> None:
    alice = await connect("alice")
    await api.subscribe("alice", "news")
    sub = await next_subscription(alice)
    await sub.leave()
    assert not sub.active
    assert await members(alice, "news") == []
    await api.subscribe("alice", "news")  # announced again: a new subscription
    again = await next_subscription(alice)
    assert again is not sub
    assert (again.room, again.active) == ("news", True)


async def test_server_side_subscription_is_rejoined_after_a_reconnect(
    api: ServerApi, connect: Connect
) -> None:
    states = States()
    alice = await connect(
        "alice", backoff=FixedBackoff(initial=AWAY, maximum=AWAY), on_state_change=states
    )
    await api.subscribe("alice", "feed")
    sub = await next_subscription(alice)
    gaps: list[Gap] = []
    sub.on_gap = gaps.append
    await api.publish("feed", "m1")
    assert (await next_message(sub)).text == "m1"
    before = alice.client_id

    alice._drop_connection_for_testing()
    lost = await states.wait_for(ConnectionState.RECONNECTING)
    missed = [await api.publish("feed", f"m{i}") for i in (2, 3)]  # while away
    assert alice.state is ConnectionState.RECONNECTING  # so they were missed
    await states.wait_for(ConnectionState.CONNECTED, after=lost)
    assert alice.client_id != before
    # The server forgot the old connection's membership: the SDK rejoined.
    assert await members(alice, "feed") == [("alice", alice.client_id)]
    live = await api.publish("feed", "m4")

    received = [await next_message(sub) for _ in range(3)]
    assert [(m.offset, m.text) for m in received] == [(2, "m2"), (3, "m3"), (4, "m4")]
    assert [m.id for m in received] == [missed[0].id, missed[1].id, live.id]
    await assert_no_message(sub)
    assert gaps == []
    assert sub.active

    # Not announced again: the next subscription is a new room's.
    await api.subscribe("alice", "other")
    assert (await next_subscription(alice)).room == "other"


@pytest.fixture
def restricted_server(tmp_path: Path) -> Iterator[Server]:
    """Clients may not join `backend:*` rooms themselves; backends may
    subscribe them."""
    config = tmp_path / "switchboard.toml"
    config.write_text('[[permissions.namespaces]]\npattern = "backend:*"\njoin = "nobody"\n')
    s = Server(config=config)
    try:
        yield s
    finally:
        s.kill()


async def test_refused_rejoin_ends_the_subscription_with_the_error(
    restricted_server: Server,
) -> None:
    states = States()
    async with (
        ServerApi(restricted_server.http_url) as api,
        Client.connect(
            restricted_server.url,
            name="alice",
            backoff=FixedBackoff(initial=0.05, maximum=0.05),
            on_state_change=states,
        ) as alice,
    ):
        await api.subscribe("alice", "backend:alerts")
        sub = await next_subscription(alice)
        assert sub.room == "backend:alerts"
        await api.publish("backend:alerts", "a1")
        assert (await next_message(sub)).text == "a1"
        with pytest.raises(ServerError) as own_join:  # not for clients to join
            await alice.join("backend:other")
        assert own_join.value.code == ErrorCode.ERROR_CODE_PERMISSION_DENIED

        alice._drop_connection_for_testing()
        lost = await states.wait_for(ConnectionState.RECONNECTING)
        await states.wait_for(ConnectionState.CONNECTED, after=lost)
        assert not sub.active
        with pytest.raises(ServerError) as refused:
            await next_message(sub)
        assert refused.value.code == ErrorCode.ERROR_CODE_PERMISSION_DENIED
        assert alice.state is ConnectionState.CONNECTED
        assert await alice.presence("backend:alerts") == []


async def test_close_ends_the_server_subscriptions_iterator(
    api: ServerApi, connect: Connect
) -> None:
    alice = await connect("alice")
    await api.subscribe("alice", "news")
    sub = await next_subscription(alice)
    await alice.close()
    assert not sub.active
    assert [s async for s in alice.server_subscriptions()] == []


# The reader's handling of the pushes, driven directly (no server).


def push(**kind: Any) -> envelope_pb2.ServerFrame:
    return envelope_pb2.ServerFrame(id=0, **kind)


def subscribed(room: str, offset: int, epoch: str) -> envelope_pb2.ServerFrame:
    position = StreamPosition(offset=offset, epoch=epoch)
    return push(subscribed=pushes_pb2.Subscribed(room=room, position=position))


def room_message(room: str, offset: int) -> envelope_pb2.ServerFrame:
    message = pushes_pb2.RoomMessage(room=room, offset=offset, payload={"text": f"m{offset}"})
    return push(message=message)


async def test_pushes_create_feed_and_end_subscriptions() -> None:
    client = Client("ws://127.0.0.1:1/ws", name="alice", buffer_size=2)
    conn: Any = None
    client._dispatch(conn, subscribed("a", 5, "e"))
    client._dispatch(conn, room_message("a", 5))  # at the position: not after it
    for offset in (6, 7, 8, 9):  # 8 and 9 overflow the buffer of 2
        client._dispatch(conn, room_message("a", offset))
    client._dispatch(conn, push(unsubscribed=pushes_pb2.Unsubscribed(room="a")))
    client._dispatch(conn, push(unsubscribed=pushes_pb2.Unsubscribed(room="b")))  # unknown
    client._dispatch(conn, room_message("a", 10))  # no subscription any more

    sub = await asyncio.wait_for(anext(client.server_subscriptions()), WAIT)
    gaps: list[Gap] = []
    sub.on_gap = gaps.append
    assert [m.offset async for m in sub] == [6, 7]
    assert gaps == [Gap("a", GapReason.OVERFLOW, 7, "e")]
    assert not sub.active


async def test_subscribed_during_a_rejoin_keeps_the_subscription() -> None:
    client = Client("ws://127.0.0.1:1/ws", name="alice")
    conn: Any = None
    client._dispatch(conn, subscribed("a", 1, "e"))
    sub = await asyncio.wait_for(anext(client.server_subscriptions()), WAIT)
    gaps: list[Gap] = []
    sub.on_gap = gaps.append
    client._dispatch(conn, room_message("a", 2))
    # Reconnected: the backend subscribed the new connection before the
    # rejoin reached the server. Nothing missed: no gap, no new subscription.
    client._dispatch(conn, subscribed("a", 2, "e"))
    client._dispatch(conn, room_message("a", 3))
    # Again, with messages missed meanwhile: a gap where they were.
    client._dispatch(conn, subscribed("a", 6, "e"))
    client._dispatch(conn, room_message("a", 7))
    client._dispatch(conn, push(unsubscribed=pushes_pb2.Unsubscribed(room="a")))
    assert [m.offset async for m in sub] == [2, 3, 7]
    assert gaps == [
        Gap("a", GapReason.RECOVERY_FAILED, 3, "e", StreamPosition(offset=6, epoch="e"))
    ]
    client._server_subs.close()
    assert [s async for s in client.server_subscriptions()] == []


async def test_the_backends_presence_events_choice_is_carried_by_the_push(
    api: ServerApi, connect: Connect
) -> None:
    alice = await connect("alice")
    await api.subscribe("alice", "watched", presence_events=True)
    sub = await next_subscription(alice)
    assert (sub.room, sub.presence_events_enabled) == ("watched", True)
    bob = await connect("bob")
    await bob.join("watched")
    event = await asyncio.wait_for(anext(sub.presence_events()), WAIT)
    assert event.member.user == "bob"
