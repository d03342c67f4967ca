from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class CloseCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLOSE_CODE_UNSPECIFIED: _ClassVar[CloseCode]
    CLOSE_CODE_NORMAL: _ClassVar[CloseCode]
    CLOSE_CODE_GOING_AWAY: _ClassVar[CloseCode]
    CLOSE_CODE_PROTOCOL_ERROR: _ClassVar[CloseCode]
    CLOSE_CODE_UNSUPPORTED_DATA: _ClassVar[CloseCode]
    CLOSE_CODE_INVALID_PAYLOAD: _ClassVar[CloseCode]
    CLOSE_CODE_POLICY_VIOLATION: _ClassVar[CloseCode]
    CLOSE_CODE_MESSAGE_TOO_BIG: _ClassVar[CloseCode]
    CLOSE_CODE_INTERNAL_ERROR: _ClassVar[CloseCode]
    CLOSE_CODE_TRY_AGAIN_LATER: _ClassVar[CloseCode]
    CLOSE_CODE_SLOW_CONSUMER: _ClassVar[CloseCode]
    CLOSE_CODE_CONNECT_TIMEOUT: _ClassVar[CloseCode]
    CLOSE_CODE_IDLE_TIMEOUT: _ClassVar[CloseCode]
    CLOSE_CODE_RATE_LIMITED: _ClassVar[CloseCode]
    CLOSE_CODE_INSUFFICIENT_STATE: _ClassVar[CloseCode]
    CLOSE_CODE_KICKED: _ClassVar[CloseCode]
CLOSE_CODE_UNSPECIFIED: CloseCode
CLOSE_CODE_NORMAL: CloseCode
CLOSE_CODE_GOING_AWAY: CloseCode
CLOSE_CODE_PROTOCOL_ERROR: CloseCode
CLOSE_CODE_UNSUPPORTED_DATA: CloseCode
CLOSE_CODE_INVALID_PAYLOAD: CloseCode
CLOSE_CODE_POLICY_VIOLATION: CloseCode
CLOSE_CODE_MESSAGE_TOO_BIG: CloseCode
CLOSE_CODE_INTERNAL_ERROR: CloseCode
CLOSE_CODE_TRY_AGAIN_LATER: CloseCode
CLOSE_CODE_SLOW_CONSUMER: CloseCode
CLOSE_CODE_CONNECT_TIMEOUT: CloseCode
CLOSE_CODE_IDLE_TIMEOUT: CloseCode
CLOSE_CODE_RATE_LIMITED: CloseCode
CLOSE_CODE_INSUFFICIENT_STATE: CloseCode
CLOSE_CODE_KICKED: CloseCode
