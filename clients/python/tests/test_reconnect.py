"""Reconnect, recovery, close codes and timeouts, against real server
processes (dropped sockets, SIGTERM, SIGSTOP, a production-mode server)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from switchboard.client import (
    Backoff,
    Client,
    CommandTimeoutError,
    ConnectionClosedError,
    ConnectionLostError,
    ConnectionState,
    ErrorCode,
    Gap,
    GapReason,
    Message,
    ServerError,
    StateChange,
    Subscription,
)

from conftest import Server

FAST = Backoff(initial=0.05, maximum=0.2)
WAIT = 10.0

Connect = Callable[..., Awaitable[Client]]


class States:
    """Records a client's state changes; waits for one."""

    def __init__(self) -> None:
        self.changes: list[StateChange] = []
        self._event = asyncio.Event()

    def __call__(self, change: StateChange) -> None:
        self.changes.append(change)
        self._event.set()

    @property
    def states(self) -> list[ConnectionState]:
        return [c.state for c in self.changes]

    async def wait_for(self, state: ConnectionState, after: int = 0) -> StateChange:
        async def find() -> StateChange:
            while True:
                for change in self.changes[after:]:
                    if change.state is state:
                        return change
                self._event.clear()
                await self._event.wait()

        return await asyncio.wait_for(find(), WAIT)


async def next_message(sub: Subscription) -> Message:
    return await asyncio.wait_for(sub.__anext__(), WAIT)


async def assert_no_message(sub: Subscription, wait: float = 0.3) -> None:
    try:
        msg = await asyncio.wait_for(sub.__anext__(), wait)
    except asyncio.TimeoutError:
        return
    pytest.fail(f"unexpected message {msg}")


def jwt(sub: str, secret: str, exp: int | None = None) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims: dict[str, Any] = {"sub": sub}
    if exp is not None:
        claims["exp"] = exp
    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(signature)


SECRET = "test-secret-0123456789"


@pytest.fixture
def production_server() -> Iterator[Server]:
    s = Server(env={"SWITCHBOARD_DEVELOPMENT": "false", "SWITCHBOARD_AUTH__JWT_SECRET": SECRET})
    try:
        yield s
    finally:
        s.kill()


async def test_network_drop_recovers_missed_messages_without_duplicates(connect: Connect) -> None:
    alice = await connect("alice")
    states = States()
    bob = await connect("bob", backoff=FAST, on_state_change=states)
    await alice.join("feed")
    gaps: list[Gap] = []
    sub = await bob.join("feed", on_gap=gaps.append)
    for i in range(1, 4):
        await alice.publish("feed", f"m{i}")
    assert [(await next_message(sub)).offset for _ in range(3)] == [1, 2, 3]

    bob._drop_connection_for_testing()
    lost = await states.wait_for(ConnectionState.RECONNECTING)
    assert lost.code == 1006  # no close frame: a network failure
    for i in range(4, 9):  # published while bob is away
        await alice.publish("feed", f"m{i}")
    await states.wait_for(ConnectionState.CONNECTED, after=states.changes.index(lost))
    await alice.publish("feed", "m9")

    received = [await next_message(sub) for _ in range(6)]
    assert [m.offset for m in received] == [4, 5, 6, 7, 8, 9]
    assert [m.text for m in received] == [f"m{i}" for i in range(4, 10)]
    await assert_no_message(sub)
    assert gaps == []
    assert sub.position.offset == 9


async def test_repeated_drops_while_publishing_lose_and_duplicate_nothing(
    connect: Connect,
) -> None:
    alice = await connect("alice")
    bob = await connect("bob", backoff=FAST)
    await alice.join("feed")
    sub = await bob.join("feed")
    received: list[int] = []

    async def read() -> None:
        async for msg in sub:
            received.append(msg.offset)
            if msg.offset == 60:
                return

    reader = asyncio.create_task(read())
    for i in range(1, 61):
        await alice.publish("feed", f"m{i}")
        if i % 15 == 0:
            bob._drop_connection_for_testing()
        await asyncio.sleep(0.005)
    await asyncio.wait_for(reader, WAIT)
    assert received == list(range(1, 61))


async def test_commands_issued_while_reconnecting_wait_for_the_connection(
    connect: Connect,
) -> None:
    states = States()
    alice = await connect(
        "alice", backoff=Backoff(initial=0.3, maximum=0.3), on_state_change=states
    )
    sub = await alice.join("room")
    alice._drop_connection_for_testing()
    await states.wait_for(ConnectionState.RECONNECTING)
    assert alice.state is ConnectionState.RECONNECTING
    ack = await alice.publish("room", "sent while away")  # waits for the reconnect
    assert alice.state is ConnectionState.CONNECTED
    assert ack.offset == 1
    assert (await next_message(sub)).text == "sent while away"
    page = await alice.history("room")
    assert [m.text for m in page.messages] == ["sent while away"]


async def test_in_flight_publish_with_idempotency_key_is_resent_once(
    server: Server, connect: Connect
) -> None:
    alice = await connect("alice", backoff=FAST)
    bob = await connect("bob")
    await alice.join("orders")
    sub = await bob.join("orders")
    server.pause()
    try:
        publish = asyncio.create_task(alice.publish("orders", "paid", idempotency_key="order-1"))
        await asyncio.sleep(0.2)  # written to the socket, no reply possible
        alice._drop_connection_for_testing()
    finally:
        server.resume()
    ack = await asyncio.wait_for(publish, WAIT)
    assert ack.offset == 1
    assert (await next_message(sub)).text == "paid"
    await alice.publish("orders", "next")
    assert (await next_message(sub)).offset == 2  # "paid" was delivered once


async def test_in_flight_direct_fails_as_lost_instead_of_risking_a_duplicate(
    server: Server, connect: Connect
) -> None:
    alice = await connect("alice", backoff=FAST)
    await connect("bob")
    server.pause()
    try:
        direct = asyncio.create_task(alice.direct("bob", "psst"))
        await asyncio.sleep(0.2)
        alice._drop_connection_for_testing()
    finally:
        server.resume()
    with pytest.raises(ConnectionLostError) as lost:
        await asyncio.wait_for(direct, WAIT)
    assert lost.value.command == "direct"
    await alice.direct("bob", "again")  # reconnected


async def test_server_shutdown_closes_with_1001_and_the_client_reconnects(
    server: Server,
) -> None:
    states = States()
    gaps: list[Gap] = []
    async with Client.connect(
        server.url, name="alice", backoff=FAST, on_state_change=states
    ) as alice:
        sub = await alice.join("room", on_gap=gaps.append)
        await alice.publish("room", "before")
        assert (await next_message(sub)).offset == 1

        assert server.stop() == 0  # SIGTERM: graceful, close 1001
        lost = await states.wait_for(ConnectionState.RECONNECTING)
        assert lost.code == 1001
        await asyncio.sleep(0.3)  # a few attempts fail while no server listens
        assert alice.state is ConnectionState.RECONNECTING

        restarted = Server(listen=f"127.0.0.1:{server.port}")
        try:
            await states.wait_for(ConnectionState.CONNECTED, after=states.changes.index(lost))
            # The new server has a new epoch: the subscription is told it
            # cannot recover, then continues live.
            await alice.publish("room", "after")
            msg = await next_message(sub)
            assert (msg.offset, msg.text) == (1, "after")
            assert len(gaps) == 1
            gap = gaps[0]
            assert gap.reason is GapReason.RECOVERY_FAILED
            assert gap.last_offset == 1
            assert gap.position is not None
            assert gap.position.offset == 0
            assert gap.position.epoch != gap.epoch
        finally:
            restarted.kill()
    assert ConnectionState.CLOSED in states.states


class SteadyBackoff(Backoff):
    """The same delay before every attempt (no jitter): deterministic tests."""

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return self.ceiling(attempt)


async def test_too_many_connections_for_the_user_is_retried_on_reconnect() -> None:
    capped = Server(env={"SWITCHBOARD_LIMITS__MAX_CONNECTIONS_PER_USER": "1"})
    states = States()
    alice = await Client.connect(
        capped.url,
        name="alice",
        backoff=SteadyBackoff(initial=0.5, maximum=0.5),
        on_state_change=states,
    )
    other: Client | None = None
    try:
        sub = await alice.join("room")
        alice._drop_connection_for_testing()
        lost = await states.wait_for(ConnectionState.RECONNECTING)
        # Another connection of alice takes the only slot before the reconnect.
        deadline = time.monotonic() + 0.4
        while other is None:
            refusals: list[int] = []
            try:
                other = await Client.connect(capped.url, name="alice")
            except ServerError as e:
                refusals.append(e.code)
            assert refusals in ([], [ErrorCode.ERROR_CODE_LIMIT_EXCEEDED])
            assert time.monotonic() < deadline, "the dropped connection kept its slot"
            if other is None:
                await asyncio.sleep(0.02)
        after_lost = states.changes.index(lost) + 1
        refused = await states.wait_for(ConnectionState.RECONNECTING, after=after_lost)
        assert refused.attempt == 2
        assert "ERROR_CODE_LIMIT_EXCEEDED" in refused.reason
        await other.close()
        await states.wait_for(ConnectionState.CONNECTED, after=states.changes.index(refused))
        await alice.publish("room", "back")
        assert (await next_message(sub)).text == "back"
        assert ConnectionState.CLOSED not in states.states
    finally:
        await alice.close()
        if other is not None:
            await other.close()
        capped.kill()


async def test_refused_token_is_terminal(production_server: Server) -> None:
    states = States()
    with pytest.raises(ServerError) as refused:
        await Client.connect(
            production_server.url, token=jwt("eve", "wrong-secret"), on_state_change=states
        )
    assert refused.value.code == ErrorCode.ERROR_CODE_UNAUTHORIZED
    assert refused.value.temporary is False
    assert states.states == [ConnectionState.CONNECTING, ConnectionState.CLOSED]


async def test_close_1008_on_token_expiry_does_not_reconnect(production_server: Server) -> None:
    states = States()
    token = jwt("alice", SECRET, exp=int(time.time()) + 2)
    client = await Client.connect(
        production_server.url, token=token, backoff=FAST, on_state_change=states
    )
    assert client.user == "alice"
    sub = await client.join("room")
    final = await asyncio.wait_for(client.wait_closed(), WAIT)
    assert final.code == 1008
    assert ConnectionState.RECONNECTING not in states.states
    assert states.states == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.CLOSED,
    ]
    with pytest.raises(ConnectionClosedError) as closed:
        await sub.__anext__()
    assert closed.value.code == 1008
    with pytest.raises(ConnectionClosedError):
        await client.publish("room", "too late")
    await asyncio.sleep(0.3)
    assert client.state is ConnectionState.CLOSED


async def wait_until_expired(exp: int) -> None:
    """Sleeps until a token with `exp` (seconds) has expired, with a margin."""
    await asyncio.sleep(max(0.0, exp - time.time()) + 1.0)


async def test_refresh_keeps_the_connection_past_the_first_expiry(
    production_server: Server,
) -> None:
    states = States()
    first_exp = int(time.time()) + 2
    alice = await Client.connect(
        production_server.url,
        token=jwt("alice", SECRET, exp=first_exp),
        backoff=FAST,
        on_state_change=states,
    )
    try:
        assert alice.expires_at_ms == first_exp * 1000
        sub = await alice.join("room")
        new_exp = int(time.time()) + 3600
        expires_at_ms = await alice.refresh(jwt("alice", SECRET, exp=new_exp))
        assert expires_at_ms == new_exp * 1000
        assert alice.expires_at_ms == new_exp * 1000

        await wait_until_expired(first_exp)
        assert alice.state is ConnectionState.CONNECTED
        ack = await alice.publish("room", "still here")
        assert ack.offset == 1
        assert (await next_message(sub)).text == "still here"
        assert states.states == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
    finally:
        await alice.close()


async def test_reconnect_after_refresh_logs_in_with_the_new_token(
    production_server: Server,
) -> None:
    states = States()
    first_exp = int(time.time()) + 2
    alice = await Client.connect(
        production_server.url,
        token=jwt("alice", SECRET, exp=first_exp),
        backoff=FAST,
        on_state_change=states,
    )
    bob = await Client.connect(
        production_server.url, token=jwt("bob", SECRET, exp=int(time.time()) + 3600)
    )
    try:
        gaps: list[Gap] = []
        sub = await alice.join("feed", on_gap=gaps.append)
        await bob.join("feed")
        await bob.publish("feed", "m1")
        assert (await next_message(sub)).offset == 1
        await alice.refresh(jwt("alice", SECRET, exp=int(time.time()) + 3600))
        await wait_until_expired(first_exp)  # the first token is useless now

        alice._drop_connection_for_testing()
        lost = await states.wait_for(ConnectionState.RECONNECTING)
        assert lost.code == 1006
        for i in range(2, 5):  # published while alice is away (or just back)
            await bob.publish("feed", f"m{i}")
        await states.wait_for(ConnectionState.CONNECTED, after=states.changes.index(lost))
        assert alice.user == "alice"
        await bob.publish("feed", "m5")

        received = [await next_message(sub) for _ in range(4)]
        assert [m.offset for m in received] == [2, 3, 4, 5]
        assert [m.text for m in received] == ["m2", "m3", "m4", "m5"]
        await assert_no_message(sub)
        assert gaps == []
        assert (await alice.publish("feed", "back")).offset == 6
        assert ConnectionState.CLOSED not in states.states
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (jwt("mallory", SECRET), ErrorCode.ERROR_CODE_UNAUTHORIZED),
        (jwt("alice", "wrong-secret"), ErrorCode.ERROR_CODE_UNAUTHORIZED),
        (jwt("alice", SECRET, exp=int(time.time()) - 60), ErrorCode.ERROR_CODE_TOKEN_EXPIRED),
    ],
    ids=["another-user", "bad-signature", "expired"],
)
async def test_refused_refresh_is_terminal(
    production_server: Server, token: str, code: int
) -> None:
    states = States()
    alice = await Client.connect(
        production_server.url,
        token=jwt("alice", SECRET, exp=int(time.time()) + 3600),
        backoff=FAST,
        on_state_change=states,
    )
    sub = await alice.join("room")
    with pytest.raises(ServerError) as refused:
        await alice.refresh(token)
    assert refused.value.code == code
    assert refused.value.temporary is False
    assert refused.value.command == "refresh"

    final = await asyncio.wait_for(alice.wait_closed(), WAIT)
    assert final.code == 1008
    assert states.states == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.CLOSED,
    ]
    with pytest.raises(ConnectionClosedError) as closed:
        await sub.__anext__()
    assert closed.value.code == 1008
    with pytest.raises(ConnectionClosedError):
        await alice.publish("room", "too late")
    await asyncio.sleep(0.3)
    assert alice.state is ConnectionState.CLOSED


async def test_command_times_out_when_the_server_does_not_answer(
    server: Server, connect: Connect
) -> None:
    alice = await connect("alice")
    await alice.join("room")
    server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(CommandTimeoutError) as timed_out:
            await alice.publish("room", "into the void", timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        server.resume()
    assert 0.45 <= elapsed < 2.0
    assert timed_out.value.command == "publish"
    assert isinstance(timed_out.value, TimeoutError)
    assert "timed out after 0.5 s" in str(timed_out.value)
    ack = await alice.publish("room", "back")
    assert ack.offset >= 1


async def test_default_command_timeout_bounds_waiting_for_a_reconnect(server: Server) -> None:
    alice = await Client.connect(server.url, name="alice", command_timeout=0.5, backoff=FAST)
    try:
        await alice.join("room")
        server.kill()  # gone for good
        started = time.monotonic()
        with pytest.raises(CommandTimeoutError):
            await alice.history("room")
        assert time.monotonic() - started < 2.0
        assert alice.state is ConnectionState.RECONNECTING
    finally:
        await asyncio.wait_for(alice.close(), WAIT)
    assert alice.state is ConnectionState.CLOSED


async def test_close_is_final_and_ends_iteration(connect: Connect) -> None:
    states = States()
    alice = await connect("alice", on_state_change=states)
    sub = await alice.join("room")
    await alice.publish("room", "last words")
    await alice.close()
    await alice.close()  # idempotent
    assert [m.text async for m in sub] == ["last words"]  # buffered, then the end
    final = await alice.wait_closed()
    assert (final.code, final.error) == (1000, None)
    assert states.states[-1] is ConnectionState.CLOSED
    assert ConnectionState.RECONNECTING not in states.states
    with pytest.raises(ConnectionClosedError) as closed:
        await alice.publish("room", "after close")
    assert closed.value.code == 1000
