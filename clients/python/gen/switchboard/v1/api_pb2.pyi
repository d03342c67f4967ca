from switchboard.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApiPublishRequest(_message.Message):
    __slots__ = ("payload", "sender", "idempotency_key")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    payload: _types_pb2.Payload
    sender: str
    idempotency_key: str
    def __init__(self, payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ..., sender: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ApiSendRequest(_message.Message):
    __slots__ = ("payload", "sender")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    payload: _types_pb2.Payload
    sender: str
    def __init__(self, payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ..., sender: _Optional[str] = ...) -> None: ...

class ApiSendReply(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ApiNotifyRequest(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: _types_pb2.Payload
    def __init__(self, payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ...) -> None: ...

class ApiNotifyReply(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class RoomInfo(_message.Message):
    __slots__ = ("room", "position", "members")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    room: str
    position: _types_pb2.StreamPosition
    members: int
    def __init__(self, room: _Optional[str] = ..., position: _Optional[_Union[_types_pb2.StreamPosition, _Mapping]] = ..., members: _Optional[int] = ...) -> None: ...

class ApiRoomList(_message.Message):
    __slots__ = ("rooms", "truncated")
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    rooms: _containers.RepeatedCompositeFieldContainer[RoomInfo]
    truncated: bool
    def __init__(self, rooms: _Optional[_Iterable[_Union[RoomInfo, _Mapping]]] = ..., truncated: bool = ...) -> None: ...

class ApiSubscribeRequest(_message.Message):
    __slots__ = ("presence_events",)
    PRESENCE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    presence_events: bool
    def __init__(self, presence_events: bool = ...) -> None: ...

class ApiAccepted(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
