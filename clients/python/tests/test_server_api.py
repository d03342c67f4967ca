"""`ServerApi` against a real server with an API key configured: every route
in both encodings, what WebSocket clients receive from it, and its errors.

What `subscribe` does is checked through the client's presence and room
notifications and, push by push, on a bare protocol connection
(`RawConnection`); how the SDK's `Client` surfaces `Subscribed` /
`Unsubscribed` is in test_server_subscriptions.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Subprotocol

from chat.v1 import chat_pb2
from switchboard.client import (
    ApiAccepted,
    Client,
    CloseCode,
    CommandTimeoutError,
    ConnectionClosedError,
    ConnectionState,
    Encoding,
    ErrorCode,
    Notification,
    Payload,
    ServerApi,
    ServerApiError,
    ServerError,
    StateChange,
)
from switchboard.v1 import commands_pb2, envelope_pb2

from conftest import Server

Connect = Callable[..., Awaitable[Client]]
WAIT = 10.0
KEY = "test-api-key-0123456789abcdef"
KEY_NAME = "backend"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A development-mode server whose API needs `KEY` (overrides
    conftest's `server`, so `connect` makes clients of this one)."""
    config = tmp_path / "switchboard.toml"
    config.write_text(f'[[api.keys]]\nname = "{KEY_NAME}"\nkey = "{KEY}"\n')
    s = Server(config=config)
    try:
        yield s
    finally:
        s.resume()
        s.kill()


@pytest.fixture(params=["protobuf", "json"])
def encoding(request: pytest.FixtureRequest) -> Encoding:
    value: Encoding = request.param
    return value


@pytest.fixture
async def api(server: Server, encoding: Encoding) -> AsyncIterator[ServerApi]:
    async with ServerApi(server.http_url, api_key=KEY, encoding=encoding) as client:
        yield client


async def next_item(iterator: AsyncIterator[Notification]) -> Notification:
    return await asyncio.wait_for(anext(iterator), WAIT)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Polls `check` until it holds (API requests are accepted, then acted
    on by the connections as they arrive)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class RawConnection:
    """A bare protocol connection (generated types only): sees every push
    exactly as the server sends it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, url: str, name: str) -> RawConnection:
        ws = await ws_connect(url, subprotocols=[Subprotocol("switchboard.v1.proto")])
        conn = cls(ws)
        request = commands_pb2.ConnectRequest(name=name)
        await ws.send(envelope_pb2.ClientFrame(id=1, connect=request).SerializeToString())
        reply = await conn.frame()
        assert (reply.id, reply.WhichOneof("kind")) == (1, "connect")
        assert reply.connect.user == name
        return conn

    async def frame(self) -> envelope_pb2.ServerFrame:
        data = await asyncio.wait_for(self.ws.recv(), WAIT)
        assert isinstance(data, bytes)
        return envelope_pb2.ServerFrame.FromString(data)

    async def close(self) -> None:
        await self.ws.close()


# Rooms.


async def test_publish_reaches_members_and_history_pages(api: ServerApi, connect: Connect) -> None:
    alice = await connect("alice")
    sub = await alice.join("room")
    acks = []
    for i in range(1, 6):
        ack = await api.publish("room", f"m{i}", sender="ops" if i % 2 else "")
        assert (ack.offset, ack.duplicate) == (i, False)
        assert ack.epoch
        assert ack.id
        assert ack.timestamp_ms > 0
        acks.append(ack)
    received = [await asyncio.wait_for(anext(sub), WAIT) for _ in range(5)]
    assert [(m.offset, m.text, m.sender) for m in received] == [
        (1, "m1", "ops"),
        (2, "m2", KEY_NAME),
        (3, "m3", "ops"),
        (4, "m4", KEY_NAME),
        (5, "m5", "ops"),
    ]
    assert [m.id for m in received] == [a.id for a in acks]

    newest = await api.history("room", limit=2)
    assert isinstance(newest, commands_pb2.HistoryReply)
    assert [m.offset for m in newest.messages] == [4, 5]
    assert [m.payload.text for m in newest.messages] == ["m4", "m5"]
    assert newest.has_more
    assert (newest.position.offset, newest.position.epoch) == (5, acks[0].epoch)
    older = await api.history("room", limit=2, before=4)
    assert [m.payload.text for m in older.messages] == ["m2", "m3"]
    assert older.has_more
    oldest = await api.history("room", limit=2, before=2)
    assert [m.offset for m in oldest.messages] == [1]
    assert not oldest.has_more
    after = await api.history("room", limit=10, after=3)
    assert [(m.offset, m.sender) for m in after.messages] == [(4, KEY_NAME), (5, "ops")]
    assert not after.has_more
    everything = await api.history("room")
    assert [m.offset for m in everything.messages] == [1, 2, 3, 4, 5]
    assert [m.id for m in everything.messages] == [a.id for a in acks]


async def test_idempotent_publish_returns_the_first_ack(api: ServerApi, connect: Connect) -> None:
    alice = await connect("alice")
    sub = await alice.join("room")
    first = await api.publish("room", "once", idempotency_key="order-17")
    again = await api.publish("room", "once", idempotency_key="order-17")
    assert (first.offset, first.duplicate) == (1, False)
    assert (again.offset, again.id, again.epoch, again.duplicate) == (
        first.offset,
        first.id,
        first.epoch,
        True,
    )
    # The key is scoped to the sender: another sender publishes anew.
    other = await api.publish("room", "once", sender="svc", idempotency_key="order-17")
    assert (other.offset, other.duplicate) == (2, False)
    history = await api.history("room")
    assert [(m.offset, m.sender) for m in history.messages] == [(1, KEY_NAME), (2, "svc")]
    received = [await asyncio.wait_for(anext(sub), WAIT) for _ in range(2)]
    assert [(m.offset, m.text) for m in received] == [(1, "once"), (2, "once")]


async def test_payloads_as_the_client_sends_them(api: ServerApi, connect: Connect) -> None:
    alice = await connect("alice", types=[chat_pb2.ChatMessage])
    sub = await alice.join("room")
    chat = chat_pb2.ChatMessage(text="héllo", tags=["a", "b"], sent_at_ms=2**62 + 3)
    await api.publish("room", "text")
    await api.publish("room", b"\x00\xffbytes")
    await api.publish("room", chat)
    await api.publish("room", Payload(data=b"\x01\x02", type_name="other.v1.Unknown"))
    got = [await asyncio.wait_for(anext(sub), WAIT) for _ in range(4)]
    assert got[0].text == "text"
    assert (got[1].data, got[1].type_name) == (b"\x00\xffbytes", "")
    assert got[2].type_name == "chat.v1.ChatMessage"
    assert got[2].value_as(chat_pb2.ChatMessage) == chat
    assert (got[3].data, got[3].type_name, got[3].value) == (b"\x01\x02", "other.v1.Unknown", None)


async def test_room_info_room_list_and_presence(api: ServerApi, connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("lobby")
    await bob.join("lobby")
    await api.publish("lobby", "one")
    ack = await api.publish("lobby", "two")
    await api.publish("archive", "kept")

    info = await api.room("lobby")
    assert (info.room, info.position.offset, info.position.epoch, info.members) == (
        "lobby",
        2,
        ack.epoch,
        2,
    )
    archive = await api.room("archive")
    assert (archive.room, archive.position.offset, archive.members) == ("archive", 1, 0)

    presence = await api.presence("lobby")
    assert isinstance(presence, commands_pb2.PresenceReply)
    assert sorted((m.user, m.client) for m in presence.members) == sorted(
        [("alice", alice.client_id), ("bob", bob.client_id)]
    )
    assert list((await api.presence("archive")).members) == []

    listed = await api.rooms()
    assert {r.room: (r.position.offset, r.members) for r in listed.rooms} == {
        "lobby": (2, 2),
        "archive": (1, 0),
    }
    assert not listed.truncated
    one = await api.rooms(limit=1)
    assert len(one.rooms) == 1
    assert one.rooms[0].room in ("lobby", "archive")
    assert one.truncated


async def test_room_names_are_percent_encoded(api: ServerApi, connect: Connect) -> None:
    name = "a/b c?d#e%f&g=h+ü"
    alice = await connect("alice")
    sub = await alice.join(name)
    ack = await api.publish(name, "odd name")
    msg = await asyncio.wait_for(anext(sub), WAIT)
    assert (msg.room, msg.offset, msg.text) == (name, ack.offset, "odd name")
    assert (await api.room(name)).room == name
    assert [m.payload.text for m in (await api.history(name)).messages] == ["odd name"]
    assert [m.user for m in (await api.presence(name)).members] == ["alice"]


async def test_notify_room_reaches_members_only(api: ServerApi, connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("room")
    reply = await api.notify_room("room", "heads up")
    assert reply.id
    note = await next_item(alice.notifications())
    assert (note.id, note.room, note.text) == (reply.id, "room", "heads up")
    assert note.timestamp_ms > 0
    # bob is not a member: the first notification he gets is the next one.
    direct = await api.notify_user("bob", "just you")
    first = await next_item(bob.notifications())
    assert (first.id, first.room, first.text) == (direct.id, "", "just you")
    # Notifications are not stored.
    assert list((await api.history("room")).messages) == []


# Users.


async def test_send_to_user_reaches_every_connection(api: ServerApi, connect: Connect) -> None:
    phone = await connect("alice")
    laptop = await connect("alice")
    reply = await api.send_to_user("alice", "psst", sender="ops")
    assert reply.id
    for client in (phone, laptop):
        msg = await asyncio.wait_for(anext(client.direct_messages()), WAIT)
        assert (msg.id, msg.sender, msg.text) == (reply.id, "ops", "psst")
    anonymous = await api.send_to_user("alice", b"\x07")
    msg = await asyncio.wait_for(anext(phone.direct_messages()), WAIT)
    assert (msg.id, msg.sender, msg.data) == (anonymous.id, KEY_NAME, b"\x07")
    # Nobody connected: accepted, delivered to no one.
    assert (await api.send_to_user("nobody", "lost")).id


async def test_notify_user(api: ServerApi, connect: Connect) -> None:
    alice = await connect("alice", types=[chat_pb2.ChatMessage])
    chat = chat_pb2.ChatMessage(text="you have mail")
    reply = await api.notify_user("alice", chat)
    assert reply.id
    note = await next_item(alice.notifications())
    assert (note.id, note.room) == (reply.id, "")
    assert note.value_as(chat_pb2.ChatMessage) == chat


async def test_subscribe_and_unsubscribe_seen_by_the_client(
    api: ServerApi, connect: Connect
) -> None:
    carol = await connect("carol")
    accepted = await api.subscribe("carol", "news")
    assert isinstance(accepted, ApiAccepted)

    async def members() -> list[tuple[str, str]]:
        return [(m.user, m.client) for m in await carol.presence("news")]

    async def subscribed() -> bool:
        return await members() == [("carol", carol.client_id)]

    # The connection's membership shows in presence and in the room's
    # notifications.
    await eventually(subscribed, "carol's connection in the room")
    assert (await api.room("news")).members == 1
    room_note = await api.notify_room("news", "breaking")
    note = await next_item(carol.notifications())
    assert (note.id, note.room, note.text) == (room_note.id, "news", "breaking")

    accepted = await api.unsubscribe("carol", "news")
    assert isinstance(accepted, ApiAccepted)

    async def unsubscribed() -> bool:
        return await members() == []

    await eventually(unsubscribed, "carol's connection to leave the room")
    await api.notify_room("news", "not for carol")
    user_note = await api.notify_user("carol", "for carol")
    note = await next_item(carol.notifications())
    assert (note.id, note.room, note.text) == (user_note.id, "", "for carol")


async def test_subscribe_pushes_subscribed_then_room_messages(
    api: ServerApi, server: Server
) -> None:
    first = await api.publish("feed", "before")
    dave = await RawConnection.open(server.url, "dave")
    try:
        await api.subscribe("dave", "feed")
        frame = await dave.frame()
        assert (frame.id, frame.WhichOneof("kind")) == (0, "subscribed")
        assert frame.subscribed.room == "feed"
        assert (frame.subscribed.position.offset, frame.subscribed.position.epoch) == (
            1,
            first.epoch,
        )

        ack = await api.publish("feed", "after")
        frame = await dave.frame()
        assert frame.WhichOneof("kind") == "message"
        assert (
            frame.message.room,
            frame.message.offset,
            frame.message.id,
            frame.message.sender,
            frame.message.payload.text,
        ) == ("feed", 2, ack.id, KEY_NAME, "after")

        await api.unsubscribe("dave", "feed")
        frame = await dave.frame()
        assert frame.WhichOneof("kind") == "unsubscribed"
        assert frame.unsubscribed.room == "feed"

        await api.publish("feed", "gone")
        note = await api.notify_user("dave", "still here")
        frame = await dave.frame()  # not the room message
        assert frame.WhichOneof("kind") == "notification"
        assert (frame.notification.id, frame.notification.room) == (note.id, "")
    finally:
        await dave.close()


async def test_disconnect_kicks_with_4500(api: ServerApi, server: Server) -> None:
    changes: list[StateChange] = []
    alice = await Client.connect(server.url, name="alice", on_state_change=changes.append)
    bob = await Client.connect(server.url, name="bob")
    try:
        accepted = await api.disconnect("alice")
        assert isinstance(accepted, ApiAccepted)
        final = await asyncio.wait_for(alice.wait_closed(), WAIT)
        assert final.state is ConnectionState.CLOSED
        assert final.code == CloseCode.CLOSE_CODE_KICKED == 4500
        assert isinstance(final.error, ConnectionClosedError)
        assert [c.state for c in changes] == [
            ConnectionState.CONNECTING,
            ConnectionState.CONNECTED,
            ConnectionState.CLOSED,
        ]
        with pytest.raises(ConnectionClosedError) as closed:
            await alice.presence("room")
        assert closed.value.code == 4500
        # Only alice was kicked.
        assert bob.state is ConnectionState.CONNECTED
        assert await bob.presence("room") == []
    finally:
        await alice.close()
        await bob.close()


# Errors.


async def test_wrong_or_missing_key_is_unauthorized(server: Server, encoding: Encoding) -> None:
    for key in ("wrong-key-0123456789abcdef", None):
        async with ServerApi(server.http_url, api_key=key, encoding=encoding) as api:
            with pytest.raises(ServerApiError) as refused:
                await api.publish("room", "sneaky")
            error = refused.value
            assert (error.status, error.code, error.temporary) == (
                401,
                ErrorCode.ERROR_CODE_UNAUTHORIZED,
                False,
            )
            assert error.code_name == "ERROR_CODE_UNAUTHORIZED"
            assert error.command == "publish"
            assert isinstance(error, ServerError)
            with pytest.raises(ServerApiError) as listing:
                await api.rooms()
            assert listing.value.status == 401
    async with ServerApi(server.http_url, api_key=KEY, encoding=encoding) as api:
        assert list((await api.history("room")).messages) == []  # nothing was published


async def test_room_name_too_long_is_invalid(api: ServerApi) -> None:
    long_name = "r" * 300
    with pytest.raises(ServerApiError) as publish:
        await api.publish(long_name, "x")
    assert (publish.value.status, publish.value.code, publish.value.temporary) == (
        400,
        ErrorCode.ERROR_CODE_INVALID_ROOM,
        False,
    )
    assert publish.value.message
    with pytest.raises(ServerApiError) as history:
        await api.history(long_name)
    assert (history.value.status, history.value.code) == (400, ErrorCode.ERROR_CODE_INVALID_ROOM)
    with pytest.raises(ServerApiError) as subscribe:
        await api.subscribe("alice", long_name)
    assert (subscribe.value.status, subscribe.value.code) == (
        400,
        ErrorCode.ERROR_CODE_INVALID_ROOM,
    )


async def test_oversized_body_is_refused(api: ServerApi, connect: Connect) -> None:
    alice = await connect("alice")
    await alice.join("room")
    # Far beyond limits.max_message_size (64 KiB by default).
    with pytest.raises(ServerApiError) as refused:
        await api.publish("room", b"x" * 100 * 1024)
    assert (refused.value.status, refused.value.code, refused.value.temporary) == (
        413,
        ErrorCode.ERROR_CODE_LIMIT_EXCEEDED,
        False,
    )
    assert (await api.room("room")).position.offset == 0


async def test_unreachable_server_timeout_and_closed_client(
    server: Server, encoding: Encoding
) -> None:
    # Port 9 on loopback: nothing listens there.
    async with ServerApi("http://127.0.0.1:9", api_key=KEY, encoding=encoding) as api:
        with pytest.raises(ConnectionClosedError) as unreachable:
            await api.rooms()
        assert unreachable.value.code is None

    api = ServerApi(server.http_url, api_key=KEY, encoding=encoding, timeout=0.5)
    assert list((await api.rooms()).rooms) == []
    server.pause()  # SIGSTOP: the request is never answered
    try:
        with pytest.raises(CommandTimeoutError) as timed_out:
            await api.history("room")
        assert timed_out.value.command == "history"
        assert isinstance(timed_out.value, TimeoutError)
    finally:
        server.resume()
    await api.aclose()
    await api.aclose()  # idempotent
    assert api.closed
    with pytest.raises(ConnectionClosedError):
        await api.rooms()


async def test_api_is_open_without_keys_in_development_mode(encoding: Encoding) -> None:
    open_server = Server()
    try:
        async with ServerApi(open_server.http_url, encoding=encoding) as api:
            ack = await api.publish("room", "no key needed")
            assert (ack.offset, ack.duplicate) == (1, False)
            history = await api.history("room")
            assert [m.payload.text for m in history.messages] == ["no key needed"]
    finally:
        open_server.kill()


def test_constructor_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="encoding"):
        ServerApi("http://127.0.0.1:1", encoding="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        ServerApi("http://127.0.0.1:1", timeout=0)
    with pytest.raises(ValueError, match="base_url"):
        ServerApi("ws://127.0.0.1:1/ws")
