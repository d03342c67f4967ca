"""Unit tests: backoff, close-code policy, payload encoding, and the
subscription's ordering rules (dedupe by offset, gaps), driven directly."""

from __future__ import annotations

import random
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from chat.v1 import chat_pb2
from switchboard.client import (
    Backoff,
    Gap,
    GapReason,
    Message,
    Payload,
    StreamPosition,
    Subscription,
    TypeRegistry,
    should_reconnect,
)
from switchboard.client._messages import to_payload
from switchboard.v1 import commands_pb2, pushes_pb2

# Backoff.


def test_backoff_ceiling_doubles_from_half_a_second_to_twenty() -> None:
    backoff = Backoff()
    assert [backoff.ceiling(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 20, 20, 20]


def test_backoff_delay_is_full_jitter_below_the_ceiling() -> None:
    backoff = Backoff()
    assert backoff.delay(3, rand=lambda: 0.0) == 0.0
    assert backoff.delay(3, rand=lambda: 0.5) == 2.0
    assert backoff.delay(10, rand=lambda: 0.999) == pytest.approx(19.98)
    rng = random.Random(7)
    for attempt in range(30):
        samples = [backoff.delay(attempt, rand=rng.random) for _ in range(200)]
        ceiling = min(20.0, 0.5 * 2**attempt)
        assert all(0 <= s < ceiling for s in samples)
        # Spread over the whole range, not bunched at the top (no fixed part).
        assert min(samples) < ceiling * 0.1
        assert max(samples) > ceiling * 0.9


def test_backoff_survives_huge_attempt_counts() -> None:
    assert Backoff().ceiling(10_000) == 20.0
    assert Backoff(initial=0.1, maximum=1.0).ceiling(2**40) == 1.0


@pytest.mark.parametrize(
    ("initial", "maximum"),
    [(0, 1), (1, 0), (-1, 1), (2, 1)],
    ids=["zero", "zero-max", "neg", "inv"],
)
def test_backoff_rejects_bad_bounds(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial=initial, maximum=maximum)


def test_backoff_rejects_negative_attempts() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff().ceiling(-1)


# Close codes.


@pytest.mark.parametrize(
    ("code", "reconnect"),
    [
        (None, True),
        (1006, True),
        (1001, True),
        (1002, True),
        (1005, True),
        (1011, True),
        (1012, True),
        (1013, True),
        (1014, True),
        (4000, True),
        (4001, True),
        (4002, True),
        (4003, True),
        (4499, True),
        (1000, False),
        (3000, False),
        (1003, False),
        (1007, False),
        (1008, False),
        (1009, False),
        (4500, False),
        (4999, False),
    ],
)
def test_close_code_policy(code: int | None, reconnect: bool) -> None:
    assert should_reconnect(code) is reconnect


# Payloads.


def test_content_becomes_the_right_payload() -> None:
    assert to_payload("hi") == Payload(text="hi")
    assert to_payload(b"\x00\x01") == Payload(data=b"\x00\x01")
    raw = Payload(text="t", data=b"d", type_name="x.Y")
    assert to_payload(raw) is raw
    typing = chat_pb2.TypingEvent(user="alice", typing=True)
    assert to_payload(typing) == Payload(
        data=typing.SerializeToString(), type_name="chat.v1.TypingEvent"
    )
    with pytest.raises(TypeError):
        to_payload(42)  # type: ignore[arg-type]


def test_registry_decodes_registered_types_only() -> None:
    registry = TypeRegistry([chat_pb2.ChatMessage])
    chat = chat_pb2.ChatMessage(text="hi", tags=["a"])
    typed = Payload(data=chat.SerializeToString(), type_name="chat.v1.ChatMessage")
    assert registry.decode(typed) == chat
    assert registry.decode(Payload(data=b"\x01", type_name="acme.v1.Other")) is None
    assert registry.decode(Payload(text="plain")) is None
    # Bytes that are not a ChatMessage: kept as bytes, never an exception.
    assert registry.decode(Payload(data=b"\xff\xff", type_name="chat.v1.ChatMessage")) is None
    # The same full name from another descriptor pool is another class.
    pool = descriptor_pool.DescriptorPool()
    file = descriptor_pb2.FileDescriptorProto()
    chat_pb2.DESCRIPTOR.CopyToProto(file)
    pool.Add(file)
    twin = message_factory.GetMessageClass(pool.FindMessageTypeByName("chat.v1.ChatMessage"))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(twin)
    registry.register(chat_pb2.ChatMessage)  # the same class again is fine


# Subscription ordering, driven as the client's reader drives it.


class _FakeClient:
    closed = False


def subscription(buffer_size: int = 100, gaps: list[Gap] | None = None) -> Subscription:
    def on_gap(gap: Gap) -> None:
        if gaps is not None:
            gaps.append(gap)

    fake: Any = _FakeClient()
    return Subscription(
        fake,
        "room",
        presence_events=False,
        on_gap=on_gap,
        types=TypeRegistry(),
        buffer_size=buffer_size,
    )


def room_message(offset: int) -> pushes_pb2.RoomMessage:
    return pushes_pb2.RoomMessage(
        room="room", offset=offset, sender="s", payload=Payload(text=f"m{offset}")
    )


def join_reply(offset: int, epoch: str, recovered: bool, replay: range = range(0)) -> Any:
    return commands_pb2.JoinReply(
        position=StreamPosition(offset=offset, epoch=epoch),
        recovered=recovered,
        messages=[room_message(o) for o in replay],
    )


async def drain(sub: Subscription) -> list[int]:
    sub._end(None)
    return [m.offset async for m in sub]


async def test_replay_and_live_overlap_is_delivered_once_in_order() -> None:
    sub = subscription()
    sub._joined(join_reply(2, "e1", False), None)
    for offset in (1, 2, 3, 4):  # 1 and 2 predate the join
        sub._deliver(room_message(offset))
    assert sub.position == StreamPosition(offset=4, epoch="e1")
    # Reconnected: since = 4 would replay 5..7; a live 6 raced ahead of it.
    sub._deliver(room_message(4))
    sub._rejoined(join_reply(7, "e1", True, range(3, 8)))
    sub._deliver(room_message(6))
    sub._deliver(room_message(8))
    assert await drain(sub) == [3, 4, 5, 6, 7, 8]


async def test_failed_recovery_reports_a_gap_and_restarts_at_the_new_position() -> None:
    gaps: list[Gap] = []
    sub = subscription(gaps=gaps)
    sub._joined(join_reply(0, "e1", False), None)
    sub._deliver(room_message(1))
    sub._deliver(room_message(2))
    sub._rejoined(join_reply(0, "e2", False))
    sub._deliver(room_message(1))  # offsets restart in the new epoch
    sub._end(None)
    received = []
    async for m in sub:
        received.append((m.offset, len(gaps)))
    # The gap comes between the old epoch's messages and the new one's.
    assert received == [(1, 0), (2, 0), (1, 1)]
    assert gaps == [
        Gap("room", GapReason.RECOVERY_FAILED, 2, "e1", StreamPosition(offset=0, epoch="e2"))
    ]
    assert sub.position == StreamPosition(offset=1, epoch="e2")


async def test_join_since_replays_and_says_whether_it_recovered() -> None:
    sub = subscription()
    since = StreamPosition(offset=2, epoch="e1")
    sub._joined(join_reply(4, "e1", True, range(3, 5)), since)
    assert sub.recovered is True
    assert await drain(sub) == [3, 4]
    lost = subscription()
    lost._joined(join_reply(4, "e2", False), since)
    assert lost.recovered is False
    assert lost.position == StreamPosition(offset=4, epoch="e2")


async def test_overflow_drops_the_newest_and_marks_one_gap() -> None:
    gaps: list[Gap] = []
    sub = subscription(buffer_size=3, gaps=gaps)
    sub._joined(join_reply(0, "e", False), None)
    for offset in range(1, 8):  # 4..7 find the buffer full
        sub._deliver(room_message(offset))
    assert [(await sub.__anext__()).offset for _ in range(2)] == [1, 2]
    sub._deliver(room_message(8))  # room again: queued after the gap
    assert (await sub.__anext__()).offset == 3
    assert gaps == []
    assert (await sub.__anext__()).offset == 8
    assert gaps == [Gap("room", GapReason.OVERFLOW, 3, "e")]
    assert sub.position.offset == 8


async def test_async_gap_callbacks_are_awaited_in_order() -> None:
    seen: list[str] = []

    async def on_gap(gap: Gap) -> None:
        seen.append(f"gap after {gap.last_offset}")

    fake: Any = _FakeClient()
    sub = Subscription(
        fake, "room", presence_events=False, on_gap=on_gap, types=TypeRegistry(), buffer_size=1
    )
    sub._joined(join_reply(0, "e", False), None)
    sub._deliver(room_message(1))
    sub._deliver(room_message(2))
    sub._end(None)
    async for m in sub:
        seen.append(f"m{m.offset}")
    assert seen == ["m1", "gap after 1"]


async def test_ended_subscription_raises_the_close_error() -> None:
    sub = subscription()
    sub._joined(join_reply(0, "e", False), None)
    sub._deliver(room_message(1))
    sub._end(RuntimeError("closed"))
    assert (await sub.__anext__()).offset == 1
    with pytest.raises(RuntimeError, match="closed"):
        await sub.__anext__()


def test_messages_expose_their_payload() -> None:
    chat = chat_pb2.ChatMessage(text="x")
    registry = TypeRegistry([chat_pb2.ChatMessage])
    m = Message._from_proto(
        pushes_pb2.RoomMessage(
            room="r",
            offset=1,
            payload=Payload(data=chat.SerializeToString(), type_name="chat.v1.ChatMessage"),
        ),
        registry,
    )
    assert m.value_as(chat_pb2.ChatMessage) == chat
    assert m.value_as(chat_pb2.TypingEvent) is None
    assert m.type_name == "chat.v1.ChatMessage"
    assert m.text == ""
    assert m.data == chat.SerializeToString()
