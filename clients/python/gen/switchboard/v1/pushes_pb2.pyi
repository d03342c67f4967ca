from switchboard.v1 import types_pb2 as _types_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoomMessage(_message.Message):
    __slots__ = ("id", "room", "offset", "sender", "timestamp_ms", "payload")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    id: int
    room: str
    offset: int
    sender: str
    timestamp_ms: int
    payload: _types_pb2.Payload
    def __init__(self, id: _Optional[int] = ..., room: _Optional[str] = ..., offset: _Optional[int] = ..., sender: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ...) -> None: ...

class DirectMessage(_message.Message):
    __slots__ = ("id", "sender", "timestamp_ms", "payload")
    ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    id: int
    sender: str
    timestamp_ms: int
    payload: _types_pb2.Payload
    def __init__(self, id: _Optional[int] = ..., sender: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("id", "room", "timestamp_ms", "payload")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    id: int
    room: str
    timestamp_ms: int
    payload: _types_pb2.Payload
    def __init__(self, id: _Optional[int] = ..., room: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ...) -> None: ...

class MemberJoined(_message.Message):
    __slots__ = ("room", "member")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    room: str
    member: _types_pb2.Member
    def __init__(self, room: _Optional[str] = ..., member: _Optional[_Union[_types_pb2.Member, _Mapping]] = ...) -> None: ...

class MemberLeft(_message.Message):
    __slots__ = ("room", "member")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    room: str
    member: _types_pb2.Member
    def __init__(self, room: _Optional[str] = ..., member: _Optional[_Union[_types_pb2.Member, _Mapping]] = ...) -> None: ...

class Subscribed(_message.Message):
    __slots__ = ("room", "position", "presence_events")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    room: str
    position: _types_pb2.StreamPosition
    presence_events: bool
    def __init__(self, room: _Optional[str] = ..., position: _Optional[_Union[_types_pb2.StreamPosition, _Mapping]] = ..., presence_events: bool = ...) -> None: ...

class Unsubscribed(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class Disconnect(_message.Message):
    __slots__ = ("code", "reason", "reconnect")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECONNECT_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    reconnect: bool
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., reconnect: bool = ...) -> None: ...
