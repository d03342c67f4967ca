"""The client API against a live server: commands, typed errors, events,
subscriptions and their bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from switchboard.client import (
    Client,
    ConnectionClosedError,
    ConnectionState,
    ErrorCode,
    Gap,
    GapReason,
    MemberJoined,
    MemberLeft,
    ServerError,
    StateChange,
    StreamPosition,
)
from switchboard.v1 import envelope_pb2

from conftest import Server

Connect = Callable[..., Awaitable[Client]]
WAIT = 10.0


async def test_connect_reports_states_and_identity(server: Server) -> None:
    changes: list[StateChange] = []
    async with Client.connect(server.url, name="alice", on_state_change=changes.append) as alice:
        assert alice.state is ConnectionState.CONNECTED
        assert alice.user == "alice"
        assert alice.client_id
    assert [c.state for c in changes] == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.CLOSED,
    ]


async def test_unreachable_server_fails_fast() -> None:
    # Port 9 on loopback: nothing listens there.
    with pytest.raises(ConnectionClosedError) as failed:
        await Client.connect("ws://127.0.0.1:9/ws", name="alice", command_timeout=2)
    assert failed.value.code is None


async def test_publish_ack_history_paging_and_presence(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    sub = await alice.join("room")
    for i in range(1, 6):
        ack = await alice.publish("room", f"m{i}")
        assert (ack.offset, ack.duplicate) == (i, False)
        assert ack.epoch
        assert ack.id
        assert ack.timestamp_ms
    assert [(await sub.__anext__()).offset for _ in range(5)] == [1, 2, 3, 4, 5]

    newest = await bob.history("room", limit=2)  # no join needed
    assert [m.offset for m in newest.messages] == [4, 5]
    assert newest.has_more
    assert newest.position.offset == 5
    older = await bob.history("room", limit=2, before=4)
    assert [m.text for m in older.messages] == ["m2", "m3"]
    after = await bob.history("room", limit=10, after=3)
    assert [m.offset for m in after.messages] == [4, 5]
    assert not after.has_more

    members = await bob.presence("room")
    assert [(m.user, m.client) for m in members] == [("alice", alice.client_id)]


async def test_server_errors_are_typed(connect: Connect) -> None:
    alice = await connect("alice")
    with pytest.raises(ServerError) as not_joined:
        await alice.publish("room", "hi")
    assert not_joined.value.code == ErrorCode.ERROR_CODE_NOT_JOINED
    assert not_joined.value.code_name == "ERROR_CODE_NOT_JOINED"
    assert not_joined.value.temporary is False
    assert not_joined.value.command == "publish"
    assert "ERROR_CODE_NOT_JOINED" in str(not_joined.value)

    first = await alice.join("room")
    with pytest.raises(ServerError) as twice:
        await alice.join("room")
    assert twice.value.code == ErrorCode.ERROR_CODE_ALREADY_JOINED
    await alice.publish("room", "still subscribed")  # the first subscription is intact
    assert (await asyncio.wait_for(first.__anext__(), WAIT)).text == "still subscribed"

    with pytest.raises(ServerError) as invalid:
        await alice.history("")
    assert invalid.value.code == ErrorCode.ERROR_CODE_INVALID_ROOM


async def test_rate_limited_command_says_when_to_retry() -> None:
    limited = Server(
        env={
            "SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND": "2",
            "SWITCHBOARD_LIMITS__COMMAND_BURST": "2",
            "SWITCHBOARD_LIMITS__RATE_LIMIT_STRIKES": "100",
        }
    )
    try:
        async with Client.connect(limited.url, name="alice") as alice:
            error: ServerError | None = None
            for _ in range(20):  # connect took one of the two; the rest go fast
                try:
                    await alice.presence("room")
                except ServerError as e:
                    error = e
                    break
            assert error is not None, "no command was rate limited"
            assert error.code == ErrorCode.ERROR_CODE_RATE_LIMITED
            assert error.temporary is True
            assert error.command == "presence"
            assert 0 < error.retry_after_ms <= 1000
            await asyncio.sleep(error.retry_after_ms / 1000 + 0.05)
            assert await alice.presence("room") == []  # allowed again
            assert alice.state is ConnectionState.CONNECTED
    finally:
        limited.kill()


async def test_leave_ends_the_subscription(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await bob.join("room")
    sub = await alice.join("room")
    await bob.publish("room", "one")
    await asyncio.sleep(0.1)
    await sub.leave()
    assert not sub.active
    await bob.publish("room", "two")
    assert [m.text async for m in sub] == ["one"]
    assert [m.user for m in await bob.presence("room")] == ["bob"]
    with pytest.raises(ServerError) as not_joined:
        await alice.leave("room")
    assert not_joined.value.code == ErrorCode.ERROR_CODE_NOT_JOINED
    # Joining again works, with a fresh subscription.
    again = await alice.join("room")
    await bob.publish("room", "three")
    assert (await asyncio.wait_for(again.__anext__(), WAIT)).text == "three"


async def test_subscription_as_context_manager_leaves(connect: Connect) -> None:
    alice = await connect("alice")
    async with await alice.join("room") as sub:
        assert sub.active
    assert not sub.active
    assert await alice.presence("room") == []


async def test_presence_events(connect: Connect) -> None:
    alice = await connect("alice")
    sub = await alice.join("lobby", presence_events=True)
    assert sub.presence_events_enabled
    events = sub.presence_events()
    bob = await connect("bob")
    await bob.join("lobby")
    joined = await asyncio.wait_for(anext(events), WAIT)
    assert isinstance(joined, MemberJoined)
    assert (joined.room, joined.member.user) == ("lobby", "bob")
    await bob.close()
    left = await asyncio.wait_for(anext(events), WAIT)
    assert isinstance(left, MemberLeft)
    assert left.member.client == joined.member.client


async def test_join_since_replays_what_was_missed(connect: Connect) -> None:
    alice = await connect("alice")
    sub = await alice.join("room")
    await alice.publish("room", "m1")
    assert (await asyncio.wait_for(sub.__anext__(), WAIT)).offset == 1
    saved = sub.position
    await sub.leave()
    await connect("bob")
    carol = await connect("carol")
    await carol.join("room")
    await carol.publish("room", "m2")
    await carol.publish("room", "m3")

    resumed = await alice.join("room", since=saved)
    assert resumed.recovered is True
    await carol.publish("room", "m4")
    assert [(await asyncio.wait_for(resumed.__anext__(), WAIT)).text for _ in range(3)] == [
        "m2",
        "m3",
        "m4",
    ]
    await resumed.leave()
    stale = await alice.join("room", since=StreamPosition(offset=1, epoch="not-this-one"))
    assert stale.recovered is False
    assert stale.position.offset == 4


async def test_slow_reader_gets_an_overflow_gap_and_can_fill_it(connect: Connect) -> None:
    alice = await connect("alice", buffer_size=3)
    gaps: list[Gap] = []
    sub = await alice.join("room", on_gap=gaps.append)
    for i in range(1, 9):  # nobody reads meanwhile; acks still flow
        await alice.publish("room", f"m{i}")
    assert [(await sub.__anext__()).offset for _ in range(3)] == [1, 2, 3]
    await alice.publish("room", "m9")
    ninth = await asyncio.wait_for(sub.__anext__(), WAIT)
    assert ninth.offset == 9
    assert [(g.reason, g.last_offset) for g in gaps] == [(GapReason.OVERFLOW, 3)]
    missed = await alice.history("room", after=gaps[0].last_offset, limit=ninth.offset - 4)
    assert [m.text for m in missed.messages] == ["m4", "m5", "m6", "m7", "m8"]


async def test_direct_messages_and_unknown_pushes(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    bob_phone = await connect("bob")
    reply = await alice.direct("bob", "psst")
    assert reply.id
    for client in (bob, bob_phone):
        dm = await asyncio.wait_for(anext(client.direct_messages()), WAIT)
        assert (dm.sender, dm.text, dm.id) == ("alice", "psst", reply.id)
    await alice.direct("nobody-online", "void")  # succeeds, delivers nothing

    # A push kind from a newer protocol (an unknown field number) is ignored.
    unknown = envelope_pb2.ServerFrame(id=0).SerializeToString() + b"\xfa\x06\x02hi"
    conn = bob._conn
    assert conn is not None
    bob._dispatch(conn, envelope_pb2.ServerFrame.FromString(unknown))
    assert bob.state is ConnectionState.CONNECTED
    await bob.presence("room")


async def test_closed_client_ends_event_iterators(connect: Connect) -> None:
    alice = await connect("alice")
    directs = alice.direct_messages()
    notifications = alice.notifications()
    await alice.close()
    assert [d async for d in directs] == []
    assert [n async for n in notifications] == []
