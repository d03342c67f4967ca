from switchboard.v1 import commands_pb2 as _commands_pb2
from switchboard.v1 import errors_pb2 as _errors_pb2
from switchboard.v1 import pushes_pb2 as _pushes_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClientFrame(_message.Message):
    __slots__ = ("id", "connect", "join", "leave", "publish", "direct", "history", "presence", "ping", "refresh")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONNECT_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    DIRECT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    id: int
    connect: _commands_pb2.ConnectRequest
    join: _commands_pb2.JoinRequest
    leave: _commands_pb2.LeaveRequest
    publish: _commands_pb2.PublishRequest
    direct: _commands_pb2.DirectRequest
    history: _commands_pb2.HistoryRequest
    presence: _commands_pb2.PresenceRequest
    ping: _commands_pb2.PingRequest
    refresh: _commands_pb2.RefreshRequest
    def __init__(self, id: _Optional[int] = ..., connect: _Optional[_Union[_commands_pb2.ConnectRequest, _Mapping]] = ..., join: _Optional[_Union[_commands_pb2.JoinRequest, _Mapping]] = ..., leave: _Optional[_Union[_commands_pb2.LeaveRequest, _Mapping]] = ..., publish: _Optional[_Union[_commands_pb2.PublishRequest, _Mapping]] = ..., direct: _Optional[_Union[_commands_pb2.DirectRequest, _Mapping]] = ..., history: _Optional[_Union[_commands_pb2.HistoryRequest, _Mapping]] = ..., presence: _Optional[_Union[_commands_pb2.PresenceRequest, _Mapping]] = ..., ping: _Optional[_Union[_commands_pb2.PingRequest, _Mapping]] = ..., refresh: _Optional[_Union[_commands_pb2.RefreshRequest, _Mapping]] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("id", "error", "connect", "join", "leave", "publish", "direct", "history", "presence", "ping", "message", "direct_message", "notification", "member_joined", "member_left", "disconnect", "refresh", "subscribed", "unsubscribed")
    ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CONNECT_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    DIRECT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DIRECT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    MEMBER_JOINED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_LEFT_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    id: int
    error: _errors_pb2.Error
    connect: _commands_pb2.ConnectReply
    join: _commands_pb2.JoinReply
    leave: _commands_pb2.LeaveReply
    publish: _commands_pb2.PublishReply
    direct: _commands_pb2.DirectReply
    history: _commands_pb2.HistoryReply
    presence: _commands_pb2.PresenceReply
    ping: _commands_pb2.PingReply
    message: _pushes_pb2.RoomMessage
    direct_message: _pushes_pb2.DirectMessage
    notification: _pushes_pb2.Notification
    member_joined: _pushes_pb2.MemberJoined
    member_left: _pushes_pb2.MemberLeft
    disconnect: _pushes_pb2.Disconnect
    refresh: _commands_pb2.RefreshReply
    subscribed: _pushes_pb2.Subscribed
    unsubscribed: _pushes_pb2.Unsubscribed
    def __init__(self, id: _Optional[int] = ..., error: _Optional[_Union[_errors_pb2.Error, _Mapping]] = ..., connect: _Optional[_Union[_commands_pb2.ConnectReply, _Mapping]] = ..., join: _Optional[_Union[_commands_pb2.JoinReply, _Mapping]] = ..., leave: _Optional[_Union[_commands_pb2.LeaveReply, _Mapping]] = ..., publish: _Optional[_Union[_commands_pb2.PublishReply, _Mapping]] = ..., direct: _Optional[_Union[_commands_pb2.DirectReply, _Mapping]] = ..., history: _Optional[_Union[_commands_pb2.HistoryReply, _Mapping]] = ..., presence: _Optional[_Union[_commands_pb2.PresenceReply, _Mapping]] = ..., ping: _Optional[_Union[_commands_pb2.PingReply, _Mapping]] = ..., message: _Optional[_Union[_pushes_pb2.RoomMessage, _Mapping]] = ..., direct_message: _Optional[_Union[_pushes_pb2.DirectMessage, _Mapping]] = ..., notification: _Optional[_Union[_pushes_pb2.Notification, _Mapping]] = ..., member_joined: _Optional[_Union[_pushes_pb2.MemberJoined, _Mapping]] = ..., member_left: _Optional[_Union[_pushes_pb2.MemberLeft, _Mapping]] = ..., disconnect: _Optional[_Union[_pushes_pb2.Disconnect, _Mapping]] = ..., refresh: _Optional[_Union[_commands_pb2.RefreshReply, _Mapping]] = ..., subscribed: _Optional[_Union[_pushes_pb2.Subscribed, _Mapping]] = ..., unsubscribed: _Optional[_Union[_pushes_pb2.Unsubscribed, _Mapping]] = ...) -> None: ...
