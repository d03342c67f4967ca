from switchboard.v1 import pushes_pb2 as _pushes_pb2
from switchboard.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectRequest(_message.Message):
    __slots__ = ("token", "name")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    token: str
    name: str
    def __init__(self, token: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ConnectReply(_message.Message):
    __slots__ = ("client", "user", "ping_interval_ms", "max_message_size", "expires_at_ms")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    PING_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    client: str
    user: str
    ping_interval_ms: int
    max_message_size: int
    expires_at_ms: int
    def __init__(self, client: _Optional[str] = ..., user: _Optional[str] = ..., ping_interval_ms: _Optional[int] = ..., max_message_size: _Optional[int] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("room", "since", "presence_events")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    room: str
    since: _types_pb2.StreamPosition
    presence_events: bool
    def __init__(self, room: _Optional[str] = ..., since: _Optional[_Union[_types_pb2.StreamPosition, _Mapping]] = ..., presence_events: bool = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("position", "recovered", "messages")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    position: _types_pb2.StreamPosition
    recovered: bool
    messages: _containers.RepeatedCompositeFieldContainer[_pushes_pb2.RoomMessage]
    def __init__(self, position: _Optional[_Union[_types_pb2.StreamPosition, _Mapping]] = ..., recovered: bool = ..., messages: _Optional[_Iterable[_Union[_pushes_pb2.RoomMessage, _Mapping]]] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class LeaveReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("room", "payload", "idempotency_key")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    room: str
    payload: _types_pb2.Payload
    idempotency_key: str
    def __init__(self, room: _Optional[str] = ..., payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PublishReply(_message.Message):
    __slots__ = ("offset", "epoch", "id", "timestamp_ms", "duplicate")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    offset: int
    epoch: str
    id: int
    timestamp_ms: int
    duplicate: bool
    def __init__(self, offset: _Optional[int] = ..., epoch: _Optional[str] = ..., id: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., duplicate: bool = ...) -> None: ...

class DirectRequest(_message.Message):
    __slots__ = ("user", "payload")
    USER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    user: str
    payload: _types_pb2.Payload
    def __init__(self, user: _Optional[str] = ..., payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ...) -> None: ...

class DirectReply(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("room", "limit", "before", "after")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    room: str
    limit: int
    before: int
    after: int
    def __init__(self, room: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[int] = ..., after: _Optional[int] = ...) -> None: ...

class HistoryReply(_message.Message):
    __slots__ = ("messages", "position", "has_more")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_pushes_pb2.RoomMessage]
    position: _types_pb2.StreamPosition
    has_more: bool
    def __init__(self, messages: _Optional[_Iterable[_Union[_pushes_pb2.RoomMessage, _Mapping]]] = ..., position: _Optional[_Union[_types_pb2.StreamPosition, _Mapping]] = ..., has_more: bool = ...) -> None: ...

class PresenceRequest(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class PresenceReply(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[_types_pb2.Member]
    def __init__(self, members: _Optional[_Iterable[_Union[_types_pb2.Member, _Mapping]]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingReply(_message.Message):
    __slots__ = ("timestamp_ms",)
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    timestamp_ms: int
    def __init__(self, timestamp_ms: _Optional[int] = ...) -> None: ...

class RefreshRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class RefreshReply(_message.Message):
    __slots__ = ("expires_at_ms",)
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    expires_at_ms: int
    def __init__(self, expires_at_ms: _Optional[int] = ...) -> None: ...
