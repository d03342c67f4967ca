"""Typed application payloads end to end: registered types arrive decoded,
unknown ones as bytes plus type name, text and opaque bytes as they were."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chat.v1 import chat_pb2
from switchboard.client import Client, Payload

Connect = Callable[..., Awaitable[Client]]
TYPES = [chat_pb2.ChatMessage, chat_pb2.TypingEvent]
WAIT = 10.0


def rich_chat_message() -> chat_pb2.ChatMessage:
    return chat_pb2.ChatMessage(
        text="Ship it, @bob 🚀 **today**",
        format=chat_pb2.FORMAT_MARKDOWN,
        mentions=[chat_pb2.Mention(user="bob", start=9, length=4)],
        attachments=[
            chat_pb2.Attachment(
                url="https://files.example.com/a/diagram.png",
                media_type="image/png",
                size_bytes=48213,
                thumbnail=b"\x89PNG\r\n\x1a\n",
            )
        ],
        reply_to=2**62 + 7,
        sent_at_ms=1_760_000_000_123,
        tags=["release", "ünïcödé"],
    )


async def test_typed_round_trip_through_publish_history_and_direct(connect: Connect) -> None:
    alice = await connect("alice", types=TYPES)
    bob = await connect("bob", types=TYPES)
    await alice.join("chat")
    sub = await bob.join("chat")
    chat = rich_chat_message()
    typing = chat_pb2.TypingEvent(user="alice", typing=True)

    await alice.publish("chat", chat)
    await alice.publish("chat", typing)
    await alice.publish("chat", "plain text")

    first = await asyncio.wait_for(sub.__anext__(), WAIT)
    assert first.type_name == "chat.v1.ChatMessage"
    assert first.value == chat
    assert first.value_as(chat_pb2.ChatMessage) == chat
    assert first.value_as(chat_pb2.TypingEvent) is None
    assert first.data == chat.SerializeToString()
    assert first.sender == "alice"

    second = await asyncio.wait_for(sub.__anext__(), WAIT)
    assert second.value_as(chat_pb2.TypingEvent) == typing

    third = await asyncio.wait_for(sub.__anext__(), WAIT)
    assert (third.text, third.value, third.type_name) == ("plain text", None, "")

    page = await bob.history("chat")
    assert [m.value for m in page.messages] == [chat, typing, None]

    directs = bob.direct_messages()
    await alice.direct("bob", chat)
    dm = await asyncio.wait_for(anext(directs), WAIT)
    assert (dm.sender, dm.value) == ("alice", chat)


async def test_unregistered_and_opaque_payloads_arrive_as_bytes(connect: Connect) -> None:
    alice = await connect("alice", types=TYPES)
    bob = await connect("bob")  # registers nothing
    await alice.join("chat")
    sub = await bob.join("chat")
    chat = rich_chat_message()

    await alice.publish("chat", chat)
    await alice.publish("chat", Payload(data=b"\x00\x01\x02\xff", type_name="acme.v1.Unknown"))
    await alice.publish("chat", b"\xde\xad\xbe\xef")
    await alice.publish("chat", Payload(text="caption", data=b"\x01"))

    received = [await asyncio.wait_for(sub.__anext__(), WAIT) for _ in range(4)]
    assert [(m.type_name, m.value) for m in received] == [
        ("chat.v1.ChatMessage", None),
        ("acme.v1.Unknown", None),
        ("", None),
        ("", None),
    ]
    assert received[0].data == chat.SerializeToString()
    assert chat_pb2.ChatMessage.FromString(received[0].data) == chat
    assert received[1].data == b"\x00\x01\x02\xff"
    assert received[2].data == b"\xde\xad\xbe\xef"
    assert (received[3].text, received[3].data) == ("caption", b"\x01")


async def test_registered_type_with_undecodable_bytes_is_not_an_error(connect: Connect) -> None:
    alice = await connect("alice", types=TYPES)
    sub = await alice.join("chat")
    await alice.publish("chat", Payload(data=b"\xff\xff\xff", type_name="chat.v1.ChatMessage"))
    await alice.publish("chat", "still flowing")
    broken = await asyncio.wait_for(sub.__anext__(), WAIT)
    assert (broken.value, broken.data) == (None, b"\xff\xff\xff")
    assert (await asyncio.wait_for(sub.__anext__(), WAIT)).text == "still flowing"
