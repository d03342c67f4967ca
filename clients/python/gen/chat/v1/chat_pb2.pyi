from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Format(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORMAT_UNSPECIFIED: _ClassVar[Format]
    FORMAT_PLAIN: _ClassVar[Format]
    FORMAT_MARKDOWN: _ClassVar[Format]
FORMAT_UNSPECIFIED: Format
FORMAT_PLAIN: Format
FORMAT_MARKDOWN: Format

class ChatMessage(_message.Message):
    __slots__ = ("text", "format", "mentions", "attachments", "reply_to", "sent_at_ms", "tags")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MENTIONS_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    text: str
    format: Format
    mentions: _containers.RepeatedCompositeFieldContainer[Mention]
    attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    reply_to: int
    sent_at_ms: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., format: _Optional[_Union[Format, str]] = ..., mentions: _Optional[_Iterable[_Union[Mention, _Mapping]]] = ..., attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ..., reply_to: _Optional[int] = ..., sent_at_ms: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class Mention(_message.Message):
    __slots__ = ("user", "start", "length")
    USER_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    user: str
    start: int
    length: int
    def __init__(self, user: _Optional[str] = ..., start: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class Attachment(_message.Message):
    __slots__ = ("url", "media_type", "size_bytes", "thumbnail")
    URL_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    url: str
    media_type: str
    size_bytes: int
    thumbnail: bytes
    def __init__(self, url: _Optional[str] = ..., media_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., thumbnail: _Optional[bytes] = ...) -> None: ...

class TypingEvent(_message.Message):
    __slots__ = ("user", "typing")
    USER_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    user: str
    typing: bool
    def __init__(self, user: _Optional[str] = ..., typing: bool = ...) -> None: ...
