"""Switchboard's Python SDK, on asyncio.

    from switchboard.client import Client

    async with Client.connect("ws://127.0.0.1:8080/ws", name="alice") as client:
        sub = await client.join("lobby")
        await client.publish("lobby", "hello")
        async for msg in sub:
            print(msg.sender, msg.text)

The client reconnects on its own (full-jitter backoff), rejoins its rooms
with the position it last delivered and never delivers an offset twice. See
`Client.connect` for the options and README.md for the semantics. Every
publish carries an idempotency key (generated when the app gives none), so
the client can send it again when the broker did not confirm it, and the app
can too, with the key every publish error carries.

`ServerApi` is a client of the server's HTTP API (`/api/v1`), for backends:
publish, notify, send to users, subscribe them to rooms or disconnect them.
The rooms a backend subscribes a client's user to reach that client as
subscriptions too, through `Client.server_subscriptions()`.

The generated protocol types live in `switchboard.v1` (e.g.
`from switchboard.v1 import envelope_pb2`); the ones this API takes or
returns are re-exported here.
"""

from switchboard.v1.api_pb2 import (
    ApiAccepted,
    ApiNotifyReply,
    ApiRoomList,
    ApiSendReply,
    RoomInfo,
)
from switchboard.v1.close_codes_pb2 import CloseCode
from switchboard.v1.commands_pb2 import DirectReply, HistoryReply, PresenceReply, PublishReply
from switchboard.v1.errors_pb2 import ErrorCode
from switchboard.v1.pushes_pb2 import MemberJoined, MemberLeft, RoomMessage
from switchboard.v1.types_pb2 import Member, Payload, StreamPosition

from ._backoff import Backoff
from ._client import Client, ConnectionState, StateCallback, StateChange
from ._codes import should_reconnect
from ._errors import (
    CommandTimeoutError,
    ConnectionClosedError,
    ConnectionLostError,
    ServerError,
    SwitchboardError,
)
from ._messages import (
    Content,
    DirectMessage,
    Gap,
    GapReason,
    HistoryPage,
    Message,
    Notification,
    TypeRegistry,
)
from ._publish import new_idempotency_key
from ._server_api import Encoding, ServerApi, ServerApiError
from ._subscription import GapCallback, PresenceEvent, Subscription

__all__ = [
    "ApiAccepted",
    "ApiNotifyReply",
    "ApiRoomList",
    "ApiSendReply",
    "Backoff",
    "Client",
    "CloseCode",
    "CommandTimeoutError",
    "ConnectionClosedError",
    "ConnectionLostError",
    "ConnectionState",
    "Content",
    "DirectMessage",
    "DirectReply",
    "Encoding",
    "ErrorCode",
    "Gap",
    "GapCallback",
    "GapReason",
    "HistoryPage",
    "HistoryReply",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "Message",
    "Notification",
    "Payload",
    "PresenceEvent",
    "PresenceReply",
    "PublishReply",
    "RoomInfo",
    "RoomMessage",
    "ServerApi",
    "ServerApiError",
    "ServerError",
    "StateCallback",
    "StateChange",
    "StreamPosition",
    "Subscription",
    "SwitchboardError",
    "TypeRegistry",
    "new_idempotency_key",
    "should_reconnect",
]
