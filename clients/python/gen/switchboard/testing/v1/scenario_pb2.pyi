from switchboard.v1 import errors_pb2 as _errors_pb2
from switchboard.v1 import pushes_pb2 as _pushes_pb2
from switchboard.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Scenario(_message.Message):
    __slots__ = ("name", "description", "steps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("client", "connect", "join", "leave", "publish", "direct", "history", "presence", "expect_push", "expect_no_push", "drop_connection", "close")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    CONNECT_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    DIRECT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    EXPECT_PUSH_FIELD_NUMBER: _ClassVar[int]
    EXPECT_NO_PUSH_FIELD_NUMBER: _ClassVar[int]
    DROP_CONNECTION_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    client: str
    connect: Connect
    join: Join
    leave: Leave
    publish: Publish
    direct: Direct
    history: History
    presence: Presence
    expect_push: ExpectPush
    expect_no_push: ExpectNoPush
    drop_connection: DropConnection
    close: Close
    def __init__(self, client: _Optional[str] = ..., connect: _Optional[_Union[Connect, _Mapping]] = ..., join: _Optional[_Union[Join, _Mapping]] = ..., leave: _Optional[_Union[Leave, _Mapping]] = ..., publish: _Optional[_Union[Publish, _Mapping]] = ..., direct: _Optional[_Union[Direct, _Mapping]] = ..., history: _Optional[_Union[History, _Mapping]] = ..., presence: _Optional[_Union[Presence, _Mapping]] = ..., expect_push: _Optional[_Union[ExpectPush, _Mapping]] = ..., expect_no_push: _Optional[_Union[ExpectNoPush, _Mapping]] = ..., drop_connection: _Optional[_Union[DropConnection, _Mapping]] = ..., close: _Optional[_Union[Close, _Mapping]] = ...) -> None: ...

class Connect(_message.Message):
    __slots__ = ("name", "expect_error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    expect_error: _errors_pb2.ErrorCode
    def __init__(self, name: _Optional[str] = ..., expect_error: _Optional[_Union[_errors_pb2.ErrorCode, str]] = ...) -> None: ...

class Join(_message.Message):
    __slots__ = ("room", "presence_events", "since", "expect_recovered", "expect_error")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    EXPECT_RECOVERED_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ERROR_FIELD_NUMBER: _ClassVar[int]
    room: str
    presence_events: bool
    since: _types_pb2.StreamPosition
    expect_recovered: bool
    expect_error: _errors_pb2.ErrorCode
    def __init__(self, room: _Optional[str] = ..., presence_events: bool = ..., since: _Optional[_Union[_types_pb2.StreamPosition, _Mapping]] = ..., expect_recovered: bool = ..., expect_error: _Optional[_Union[_errors_pb2.ErrorCode, str]] = ...) -> None: ...

class Leave(_message.Message):
    __slots__ = ("room", "expect_error")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ERROR_FIELD_NUMBER: _ClassVar[int]
    room: str
    expect_error: _errors_pb2.ErrorCode
    def __init__(self, room: _Optional[str] = ..., expect_error: _Optional[_Union[_errors_pb2.ErrorCode, str]] = ...) -> None: ...

class Publish(_message.Message):
    __slots__ = ("room", "payload", "idempotency_key", "expect_offset", "expect_duplicate", "expect_error")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    EXPECT_DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ERROR_FIELD_NUMBER: _ClassVar[int]
    room: str
    payload: _types_pb2.Payload
    idempotency_key: str
    expect_offset: int
    expect_duplicate: bool
    expect_error: _errors_pb2.ErrorCode
    def __init__(self, room: _Optional[str] = ..., payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., expect_offset: _Optional[int] = ..., expect_duplicate: bool = ..., expect_error: _Optional[_Union[_errors_pb2.ErrorCode, str]] = ...) -> None: ...

class Direct(_message.Message):
    __slots__ = ("user", "payload", "expect_error")
    USER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ERROR_FIELD_NUMBER: _ClassVar[int]
    user: str
    payload: _types_pb2.Payload
    expect_error: _errors_pb2.ErrorCode
    def __init__(self, user: _Optional[str] = ..., payload: _Optional[_Union[_types_pb2.Payload, _Mapping]] = ..., expect_error: _Optional[_Union[_errors_pb2.ErrorCode, str]] = ...) -> None: ...

class History(_message.Message):
    __slots__ = ("room", "limit", "before", "after", "expect_messages", "expect_has_more", "expect_error")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    EXPECT_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    EXPECT_HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ERROR_FIELD_NUMBER: _ClassVar[int]
    room: str
    limit: int
    before: int
    after: int
    expect_messages: _containers.RepeatedCompositeFieldContainer[_pushes_pb2.RoomMessage]
    expect_has_more: bool
    expect_error: _errors_pb2.ErrorCode
    def __init__(self, room: _Optional[str] = ..., limit: _Optional[int] = ..., before: _Optional[int] = ..., after: _Optional[int] = ..., expect_messages: _Optional[_Iterable[_Union[_pushes_pb2.RoomMessage, _Mapping]]] = ..., expect_has_more: bool = ..., expect_error: _Optional[_Union[_errors_pb2.ErrorCode, str]] = ...) -> None: ...

class Presence(_message.Message):
    __slots__ = ("room", "expect_users", "expect_error")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    EXPECT_USERS_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ERROR_FIELD_NUMBER: _ClassVar[int]
    room: str
    expect_users: _containers.RepeatedScalarFieldContainer[str]
    expect_error: _errors_pb2.ErrorCode
    def __init__(self, room: _Optional[str] = ..., expect_users: _Optional[_Iterable[str]] = ..., expect_error: _Optional[_Union[_errors_pb2.ErrorCode, str]] = ...) -> None: ...

class ExpectPush(_message.Message):
    __slots__ = ("message", "direct_message", "notification", "member_joined", "member_left", "timeout_ms")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DIRECT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    MEMBER_JOINED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_LEFT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    message: _pushes_pb2.RoomMessage
    direct_message: _pushes_pb2.DirectMessage
    notification: _pushes_pb2.Notification
    member_joined: _pushes_pb2.MemberJoined
    member_left: _pushes_pb2.MemberLeft
    timeout_ms: int
    def __init__(self, message: _Optional[_Union[_pushes_pb2.RoomMessage, _Mapping]] = ..., direct_message: _Optional[_Union[_pushes_pb2.DirectMessage, _Mapping]] = ..., notification: _Optional[_Union[_pushes_pb2.Notification, _Mapping]] = ..., member_joined: _Optional[_Union[_pushes_pb2.MemberJoined, _Mapping]] = ..., member_left: _Optional[_Union[_pushes_pb2.MemberLeft, _Mapping]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class ExpectNoPush(_message.Message):
    __slots__ = ("wait_ms",)
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    wait_ms: int
    def __init__(self, wait_ms: _Optional[int] = ...) -> None: ...

class DropConnection(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Close(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
