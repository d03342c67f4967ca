"""Typed application payloads and the values the SDK hands to the app."""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from switchboard.v1 import pushes_pb2, types_pb2

logger = logging.getLogger("switchboard.client")

M = TypeVar("M", bound=ProtoMessage)

#: What `publish` and `direct` accept: text, opaque bytes, a ready `Payload`,
#: or any generated protobuf message (sent typed: its bytes plus its full name).
Content = str | bytes | types_pb2.Payload | ProtoMessage


class TypeRegistry:
    """Maps protobuf full names ("chat.v1.ChatMessage") to generated classes.

    Received payloads whose `type_name` is registered are decoded into an
    instance of the class; any other payload is left as bytes.
    """

    def __init__(self, types: Iterable[type[ProtoMessage]] = ()) -> None:
        self._by_name: dict[str, type[ProtoMessage]] = {}
        for cls in types:
            self.register(cls)

    def register(self, cls: type[ProtoMessage]) -> None:
        """Adds a generated message class."""
        name = cls.DESCRIPTOR.full_name
        known = self._by_name.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"another class is already registered as {name}")
        self._by_name[name] = cls

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._by_name

    def get(self, type_name: str) -> type[ProtoMessage] | None:
        """The class registered under `type_name`, if any."""
        return self._by_name.get(type_name)

    def decode(self, payload: types_pb2.Payload) -> ProtoMessage | None:
        """The payload's typed value, or None when its type is not registered
        (or its bytes do not decode as that type, which is logged)."""
        if not payload.type_name:
            return None
        cls = self._by_name.get(payload.type_name)
        if cls is None:
            return None
        try:
            return cls.FromString(payload.data)
        except DecodeError:
            logger.warning("payload of type %s does not decode; kept as bytes", payload.type_name)
            return None


def to_payload(content: Content) -> types_pb2.Payload:
    """Builds the wire `Payload` for `content`."""
    if isinstance(content, str):
        return types_pb2.Payload(text=content)
    if isinstance(content, (bytes, bytearray, memoryview)):
        return types_pb2.Payload(data=bytes(content))
    if isinstance(content, types_pb2.Payload):
        return content
    if isinstance(content, ProtoMessage):
        return types_pb2.Payload(
            data=content.SerializeToString(), type_name=content.DESCRIPTOR.full_name
        )
    raise TypeError(f"cannot send {type(content).__name__}: pass str, bytes, Payload or a message")


class _HasPayload:
    """Accessors shared by everything that carries a `Payload`."""

    __slots__ = ()
    payload: types_pb2.Payload
    value: ProtoMessage | None

    @property
    def text(self) -> str:
        """The payload's text (empty when none)."""
        return self.payload.text

    @property
    def data(self) -> bytes:
        """The payload's raw bytes (for typed payloads, the encoded value)."""
        return self.payload.data

    @property
    def type_name(self) -> str:
        """Full protobuf name of `data`, empty for text or opaque bytes."""
        return self.payload.type_name

    def value_as(self, cls: type[M]) -> M | None:
        """The decoded value if it is a `cls`, else None (a typed accessor)."""
        return self.value if isinstance(self.value, cls) else None


@dataclass(frozen=True, slots=True)
class Message(_HasPayload):
    """A message published to a room."""

    room: str
    offset: int
    id: int
    sender: str
    timestamp_ms: int
    payload: types_pb2.Payload
    #: The decoded payload when its type is registered, else None.
    value: ProtoMessage | None

    @classmethod
    def _from_proto(cls, m: pushes_pb2.RoomMessage, types: TypeRegistry) -> Message:
        return cls(
            room=m.room,
            offset=m.offset,
            id=m.id,
            sender=m.sender,
            timestamp_ms=m.timestamp_ms,
            payload=m.payload,
            value=types.decode(m.payload),
        )


@dataclass(frozen=True, slots=True)
class DirectMessage(_HasPayload):
    """A message sent directly to this connection's user."""

    id: int
    sender: str
    timestamp_ms: int
    payload: types_pb2.Payload
    #: The decoded payload when its type is registered, else None.
    value: ProtoMessage | None

    @classmethod
    def _from_proto(cls, m: pushes_pb2.DirectMessage, types: TypeRegistry) -> DirectMessage:
        return cls(
            id=m.id,
            sender=m.sender,
            timestamp_ms=m.timestamp_ms,
            payload=m.payload,
            value=types.decode(m.payload),
        )


@dataclass(frozen=True, slots=True)
class Notification(_HasPayload):
    """A notification a backend sent to this user (`room` empty) or to a
    joined room."""

    id: int
    room: str
    timestamp_ms: int
    payload: types_pb2.Payload
    #: The decoded payload when its type is registered, else None.
    value: ProtoMessage | None

    @classmethod
    def _from_proto(cls, n: pushes_pb2.Notification, types: TypeRegistry) -> Notification:
        return cls(
            id=n.id,
            room=n.room,
            timestamp_ms=n.timestamp_ms,
            payload=n.payload,
            value=types.decode(n.payload),
        )


class GapReason(enum.Enum):
    """Why a subscription skipped messages."""

    #: After a reconnect the server could not replay what was missed (the
    #: room's epoch changed, e.g. a server restart, or its history no longer
    #: reaches back). Live messages continue from `Gap.position`.
    RECOVERY_FAILED = "recovery_failed"
    #: The app read too slowly: the subscription's buffer was full and the
    #: newest messages after `Gap.last_offset` were dropped.
    OVERFLOW = "overflow"


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages of a room were skipped; read them with `Client.history`.

    For `OVERFLOW`, `history(room, after=gap.last_offset)` returns the
    dropped messages (up to the next one delivered). For `RECOVERY_FAILED`,
    offsets of the old epoch mean nothing any more: reload the room, e.g.
    with `history(room)`.
    """

    room: str
    reason: GapReason
    #: Offset of the last message delivered before the gap (0: none).
    last_offset: int
    #: Epoch of `last_offset`.
    epoch: str
    #: With `RECOVERY_FAILED`: the room's position when it was rejoined;
    #: live messages continue after it.
    position: types_pb2.StreamPosition | None = None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a room's history."""

    #: The messages, in offset order.
    messages: list[Message]
    #: The room's current position (newest offset and epoch).
    position: types_pb2.StreamPosition
    #: More messages exist beyond the page in the paging direction.
    has_more: bool
