"""A client of the server's HTTP API (`/api/v1`), for backends.

Each method is one request: the body is a message of `api.proto` (or none),
the reply a message of `api.proto` or one shared with the WebSocket protocol
(`PublishReply`, `HistoryReply`, `PresenceReply`), in binary protobuf or
canonical proto3 JSON. A failed request raises `ServerApiError` (the server's
`Error` plus the HTTP status), `CommandTimeoutError`, `ConnectionClosedError`
(the server could not be reached) or `ConnectionLostError` (the connection
failed after the request was sent: its outcome is unknown). A 503
`ERROR_CODE_UNAVAILABLE` had no effect; after a 504
`ERROR_CODE_OUTCOME_UNKNOWN` (the broker did not confirm the command in time),
a timeout or a lost connection the outcome is unknown: repeat a publish with
the same `idempotency_key`. `ServerApi` does not retry by itself.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Literal, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from switchboard.v1 import api_pb2, commands_pb2, errors_pb2

from ._errors import (
    CommandTimeoutError,
    ConnectionClosedError,
    ConnectionLostError,
    ServerError,
    SwitchboardError,
)
from ._messages import Content, to_payload

#: How request and response bodies are encoded.
Encoding = Literal["protobuf", "json"]

_CONTENT_TYPES: dict[str, str] = {
    "protobuf": "application/x-protobuf",
    "json": "application/json",
}
_PROTOBUF = _CONTENT_TYPES["protobuf"]
_JSON = _CONTENT_TYPES["json"]

# The code of an error response whose body is not an `Error` (e.g. from a
# proxy in front of the server), by HTTP status. A gateway's 502 or 504 may
# come after it forwarded the request, so its outcome is unknown; a 503 means
# nothing was carried out.
_STATUS_CODES: dict[int, int] = {
    400: errors_pb2.ERROR_CODE_BAD_REQUEST,
    401: errors_pb2.ERROR_CODE_UNAUTHORIZED,
    403: errors_pb2.ERROR_CODE_PERMISSION_DENIED,
    404: errors_pb2.ERROR_CODE_BAD_REQUEST,
    413: errors_pb2.ERROR_CODE_LIMIT_EXCEEDED,
    429: errors_pb2.ERROR_CODE_RATE_LIMITED,
    502: errors_pb2.ERROR_CODE_OUTCOME_UNKNOWN,
    503: errors_pb2.ERROR_CODE_UNAVAILABLE,
    504: errors_pb2.ERROR_CODE_OUTCOME_UNKNOWN,
}
_TEMPORARY_CODES = frozenset(
    {
        errors_pb2.ERROR_CODE_INTERNAL,
        errors_pb2.ERROR_CODE_RATE_LIMITED,
        errors_pb2.ERROR_CODE_UNAVAILABLE,
        errors_pb2.ERROR_CODE_OUTCOME_UNKNOWN,
    }
)

R = TypeVar("R", bound=ProtoMessage)


class ServerApiError(ServerError):
    """The server API answered with an error status and an `Error` body.

    `status` is the HTTP status; `code` (an `ErrorCode`), `message`,
    `temporary` and `retry_after_ms` come from the `Error` body, as for
    `ServerError`. When the server gave no `retry_after_ms` but a
    `Retry-After` header (e.g. 503 `ERROR_CODE_UNAVAILABLE`),
    `retry_after_ms` is the header's delay. A body that is not an `Error`
    (e.g. from a proxy) gets the code that fits the status.
    """

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        temporary: bool = False,
        retry_after_ms: int = 0,
        command: str = "",
    ) -> None:
        self.status = status
        super().__init__(
            code, message, temporary=temporary, retry_after_ms=retry_after_ms, command=command
        )

    def _describe(self) -> str:
        return f"HTTP {self.status}: {super()._describe()}"


class ServerApi:
    """An asyncio client of the server's HTTP API (`/api/v1`).

        async with ServerApi("http://127.0.0.1:8080", api_key=KEY) as api:
            ack = await api.publish("lobby", "deploy finished")

    - `base_url`: the server's HTTP address (scheme, host, port, and a path
      prefix when a proxy serves it under one).
    - `api_key`: one of the server's `[[api.keys]]`, sent as
      `Authorization: Bearer`; None for a development server with none.
    - `encoding`: "protobuf" (binary protobuf) or "json" (proto3 JSON), for
      requests and replies alike.
    - `timeout`: seconds each request may take, from connecting to reading
      the whole reply.

    `room` and `user` may be any string: they are percent-encoded into the
    path. `payload` is what `Client.publish` takes: `str` (text), `bytes`,
    a `Payload`, or a generated message (sent typed).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        encoding: Encoding = "protobuf",
        timeout: float = 10.0,
    ) -> None:
        if encoding not in _CONTENT_TYPES:
            raise ValueError(f'encoding must be "protobuf" or "json", not {encoding!r}')
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        self._base_url = base_url.rstrip("/")
        self._encoding: Encoding = encoding
        self._content_type = _CONTENT_TYPES[encoding]
        self._timeout = timeout
        headers = {"Accept": self._content_type}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout)
        self._closed = False

    @property
    def base_url(self) -> str:
        """The server's address, as given (without a trailing slash)."""
        return self._base_url

    @property
    def encoding(self) -> Encoding:
        """The body encoding: "protobuf" or "json"."""
        return self._encoding

    @property
    def closed(self) -> bool:
        """True once `aclose()` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Closes the connections to the server. Idempotent; later requests
        raise `ConnectionClosedError`."""
        self._closed = True
        await self._http.aclose()

    async def __aenter__(self) -> ServerApi:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Rooms.

    async def publish(
        self, room: str, payload: Content, *, sender: str = "", idempotency_key: str = ""
    ) -> commands_pb2.PublishReply:
        """Publishes to `room` (no membership needed); every member receives
        it as a room message. `sender`: the user to stamp on it (empty: the
        API key's name). A repeated `idempotency_key` (per sender) is not
        published again: the reply is the first one's, with `duplicate` set."""
        request = api_pb2.ApiPublishRequest(
            payload=to_payload(payload), sender=sender, idempotency_key=idempotency_key
        )
        return await self._request(
            "publish", "POST", f"/rooms/{_seg(room)}/messages", commands_pb2.PublishReply, request
        )

    async def history(
        self, room: str, *, limit: int = 0, before: int = 0, after: int = 0
    ) -> commands_pb2.HistoryReply:
        """A page of `room`'s history, as `Client.history` reads it: without
        `after`, the newest `limit` messages older than `before` (0: no
        bound); with `after`, the oldest `limit` newer than it. `limit` 0:
        the server's default page size."""
        params = {
            name: value
            for name, value in (("limit", limit), ("before", before), ("after", after))
            if value
        }
        return await self._request(
            "history",
            "GET",
            f"/rooms/{_seg(room)}/messages",
            commands_pb2.HistoryReply,
            params=params,
        )

    async def notify_room(self, room: str, payload: Content) -> api_pb2.ApiNotifyReply:
        """Sends a notification (not stored) to every member of `room`."""
        request = api_pb2.ApiNotifyRequest(payload=to_payload(payload))
        return await self._request(
            "notify_room",
            "POST",
            f"/rooms/{_seg(room)}/notifications",
            api_pb2.ApiNotifyReply,
            request,
        )

    async def presence(self, room: str) -> commands_pb2.PresenceReply:
        """The connections present in `room`, on every node."""
        return await self._request(
            "presence", "GET", f"/rooms/{_seg(room)}/presence", commands_pb2.PresenceReply
        )

    async def room(self, room: str) -> api_pb2.RoomInfo:
        """`room`'s newest position and member count."""
        return await self._request("room", "GET", f"/rooms/{_seg(room)}", api_pb2.RoomInfo)

    async def rooms(self, *, limit: int = 0) -> api_pb2.ApiRoomList:
        """Rooms that have history or members, at most `limit` (0: the
        server's default, 100); `truncated` tells whether there are more."""
        params = {"limit": limit} if limit else {}
        return await self._request("rooms", "GET", "/rooms", api_pb2.ApiRoomList, params=params)

    # Users.

    async def send_to_user(
        self, user: str, payload: Content, *, sender: str = ""
    ) -> api_pb2.ApiSendReply:
        """A direct message to every connection of `user`. `sender`: the
        user to stamp on it (empty: the API key's name)."""
        request = api_pb2.ApiSendRequest(payload=to_payload(payload), sender=sender)
        return await self._request(
            "send_to_user", "POST", f"/users/{_seg(user)}/messages", api_pb2.ApiSendReply, request
        )

    async def notify_user(self, user: str, payload: Content) -> api_pb2.ApiNotifyReply:
        """Sends a notification (not stored) to every connection of `user`."""
        request = api_pb2.ApiNotifyRequest(payload=to_payload(payload))
        return await self._request(
            "notify_user",
            "POST",
            f"/users/{_seg(user)}/notifications",
            api_pb2.ApiNotifyReply,
            request,
        )

    async def subscribe(
        self, user: str, room: str, *, presence_events: bool = False
    ) -> api_pb2.ApiAccepted:
        """Makes every live connection of `user` a member of `room` (each
        gets a `Subscribed` push, then the room's messages)."""
        request = api_pb2.ApiSubscribeRequest(presence_events=presence_events)
        return await self._request(
            "subscribe",
            "PUT",
            f"/users/{_seg(user)}/rooms/{_seg(room)}",
            api_pb2.ApiAccepted,
            request,
        )

    async def unsubscribe(self, user: str, room: str) -> api_pb2.ApiAccepted:
        """Takes every connection of `user` out of `room` (an
        `Unsubscribed` push)."""
        return await self._request(
            "unsubscribe",
            "DELETE",
            f"/users/{_seg(user)}/rooms/{_seg(room)}",
            api_pb2.ApiAccepted,
        )

    async def disconnect(self, user: str) -> api_pb2.ApiAccepted:
        """Closes every connection of `user` with 4500 (kicked: the SDKs do
        not reconnect)."""
        return await self._request(
            "disconnect", "POST", f"/users/{_seg(user)}/disconnect", api_pb2.ApiAccepted
        )

    # Underneath.

    async def _request(
        self,
        command: str,
        method: str,
        path: str,
        reply_type: type[R],
        body: ProtoMessage | None = None,
        *,
        params: dict[str, int] | None = None,
    ) -> R:
        if self._closed:
            raise ConnectionClosedError(None, "the ServerApi is closed (aclose() was called)")
        headers: dict[str, str] = {}
        content: bytes | None = None
        if body is not None:
            content = self._encode(body)
            headers["Content-Type"] = self._content_type
        url = f"{self._base_url}/api/v1{path}"
        try:
            response = await asyncio.wait_for(
                self._http.request(method, url, content=content, params=params, headers=headers),
                self._timeout,
            )
        except (httpx.TimeoutException, asyncio.TimeoutError) as e:
            raise CommandTimeoutError(command, self._timeout) from e
        except httpx.ConnectError as e:
            raise ConnectionClosedError(None, f"cannot reach {self._base_url}: {e}") from e
        except httpx.TransportError as e:
            # The request may have reached the server: its outcome is unknown.
            raise ConnectionLostError(command) from e
        if response.is_success:
            reply = reply_type()
            if not _decode(response, reply):
                raise SwitchboardError(
                    f"{command}: undecodable {response.status_code} reply "
                    f"(Content-Type {response.headers.get('content-type')!r})"
                )
            return reply
        raise _error(command, response)

    def _encode(self, message: ProtoMessage) -> bytes:
        if self._content_type == _PROTOBUF:
            return message.SerializeToString()
        return json_format.MessageToJson(message, indent=None).encode()


def _seg(value: str) -> str:
    """`value` as one percent-encoded path segment."""
    return quote(value, safe="")


def _media_type(response: httpx.Response) -> str:
    value: str = response.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def _decode(response: httpx.Response, message: ProtoMessage) -> bool:
    """Decodes `response`'s body into `message` by its Content-Type; False
    when the type is not one of the API's or the body does not decode."""
    media_type = _media_type(response)
    body = response.content
    try:
        if media_type == _PROTOBUF:
            message.ParseFromString(body)
        elif media_type == _JSON:
            if body.strip():
                json_format.Parse(body, message, ignore_unknown_fields=True)
        elif body:
            return False
    except (DecodeError, json_format.ParseError, UnicodeDecodeError):
        return False
    return True


def _error(command: str, response: httpx.Response) -> ServerApiError:
    status = response.status_code
    retry_after_ms = _retry_after_ms(response)
    error = errors_pb2.Error()
    if _decode(response, error) and error.code != errors_pb2.ERROR_CODE_UNSPECIFIED:
        return ServerApiError(
            status,
            error.code,
            error.message,
            temporary=error.temporary,
            retry_after_ms=error.retry_after_ms or retry_after_ms,
            command=command,
        )
    # Not an `Error`: e.g. a proxy's page.
    code = _STATUS_CODES.get(
        status,
        errors_pb2.ERROR_CODE_INTERNAL if status >= 500 else errors_pb2.ERROR_CODE_BAD_REQUEST,
    )
    text = response.text.strip()[:200] if response.content else ""
    message = f"{status} {response.reason_phrase}" + (f": {text}" if text else "")
    return ServerApiError(
        status,
        code,
        message,
        temporary=code in _TEMPORARY_CODES,
        retry_after_ms=retry_after_ms,
        command=command,
    )


def _retry_after_ms(response: httpx.Response) -> int:
    """The `Retry-After` header's delay in milliseconds (0: none, or an
    HTTP date, which the API does not send)."""
    value: str = response.headers.get("retry-after", "").strip()
    if not (value.isascii() and value.isdigit()):
        return 0
    return min(int(value) * 1000, 2**32 - 1)
