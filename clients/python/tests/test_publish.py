"""Safe publishing against real server processes: the generated
idempotency key, the key every publish error carries and publishing again
with it (memory broker), and the automatic retries when a real Redis hangs
(`redis-server` from PATH, paused with SIGSTOP)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest

from switchboard.client import (
    Backoff,
    Client,
    CommandTimeoutError,
    ConnectionClosedError,
    ConnectionLostError,
    ErrorCode,
    Message,
    ServerApi,
    ServerError,
    Subscription,
    new_idempotency_key,
)
from switchboard.client._publish import PUBLISH_BACKOFF
from switchboard.client._server_api import _error

from conftest import Redis, Server, client_factory

FAST = Backoff(initial=0.05, maximum=0.2)
WAIT = 10.0
GENERATED_KEY = re.compile(r"[0-9a-f]{32}")

Connect = Callable[..., Awaitable[Client]]


async def next_message(sub: Subscription) -> Message:
    return await asyncio.wait_for(sub.__anext__(), WAIT)


async def assert_no_message(sub: Subscription, wait: float = 0.5) -> None:
    try:
        msg = await asyncio.wait_for(sub.__anext__(), wait)
    except asyncio.TimeoutError:
        return
    pytest.fail(f"unexpected message {msg}")


# The key.


def test_generated_idempotency_keys_are_32_random_lowercase_hex_characters() -> None:
    keys = {new_idempotency_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(GENERATED_KEY.fullmatch(key) for key in keys)


def test_publish_retry_delays_double_from_100_ms_to_2_s() -> None:
    assert [PUBLISH_BACKOFF.ceiling(n) for n in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2, 2]
    assert PUBLISH_BACKOFF.delay(3, rand=lambda: 0.5) == pytest.approx(0.4)


def test_negative_publish_retries_are_refused() -> None:
    with pytest.raises(ValueError, match="publish_retries"):
        Client.connect("ws://127.0.0.1:1/ws", name="alice", publish_retries=-1)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (502, ErrorCode.ERROR_CODE_OUTCOME_UNKNOWN),
        (503, ErrorCode.ERROR_CODE_UNAVAILABLE),
        (504, ErrorCode.ERROR_CODE_OUTCOME_UNKNOWN),
    ],
)
def test_a_gateway_error_page_says_whether_the_request_may_have_taken_effect(
    status: int, code: int
) -> None:
    """A proxy's 502 or 504 may come after it forwarded the request; its 503
    means nothing was done. All three are temporary."""
    error = _error("publish", httpx.Response(status, text="<html>gateway</html>"))
    assert (error.status, error.code, error.temporary) == (status, code, True)


# Publishing again with the key of a failed publish (memory broker).


async def test_publishes_without_a_key_are_each_delivered(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("room")
    sub = await bob.join("room")
    first = await alice.publish("room", "same")
    second = await alice.publish("room", "same")
    assert (first.offset, first.duplicate) == (1, False)
    assert (second.offset, second.duplicate) == (2, False)
    assert [(await next_message(sub)).offset for _ in range(2)] == [1, 2]
    await assert_no_message(sub)


async def test_publish_errors_carry_the_idempotency_key(connect: Connect) -> None:
    alice = await connect("alice")
    with pytest.raises(ServerError) as generated:
        await alice.publish("room", "not joined yet")
    error = generated.value
    assert error.code == ErrorCode.ERROR_CODE_NOT_JOINED  # answered once, not retried
    assert error.idempotency_key is not None
    assert GENERATED_KEY.fullmatch(error.idempotency_key)

    with pytest.raises(ServerError) as own:
        await alice.publish("room", "not joined yet", idempotency_key="order-9")
    assert own.value.idempotency_key == "order-9"

    # The failure had no effect: the key is new to the server.
    await alice.join("room")
    ack = await alice.publish("room", "now joined", idempotency_key=error.idempotency_key)
    assert (ack.offset, ack.duplicate) == (1, False)


async def test_a_keyless_publish_cut_off_by_a_lost_connection_is_retried_with_its_key(
    server: Server, connect: Connect
) -> None:
    alice = await connect("alice", backoff=FAST)
    bob = await connect("bob")
    await alice.join("orders")
    sub = await bob.join("orders")
    server.pause()
    try:
        publish = asyncio.create_task(alice.publish("orders", "paid"))
        await asyncio.sleep(0.2)  # written to the socket, no reply possible
        alice._drop_connection_for_testing()
    finally:
        server.resume()
    with pytest.raises(ConnectionLostError) as lost:
        await asyncio.wait_for(publish, WAIT)
    key = lost.value.idempotency_key
    assert key is not None
    assert GENERATED_KEY.fullmatch(key)

    # Whether or not the first attempt got through, the retry with its key
    # makes the message exist exactly once.
    ack = await alice.publish("orders", "paid", idempotency_key=key)
    assert ack.offset == 1
    msg = await next_message(sub)
    assert (msg.offset, msg.text) == (1, "paid")
    await assert_no_message(sub)


async def test_a_timed_out_publish_is_retried_with_its_key(
    server: Server, connect: Connect
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("orders")
    sub = await bob.join("orders")
    server.pause()
    try:
        with pytest.raises(CommandTimeoutError) as timed_out:
            await alice.publish("orders", "paid", timeout=0.3)
    finally:
        server.resume()
    key = timed_out.value.idempotency_key
    assert key is not None
    assert GENERATED_KEY.fullmatch(key)

    # The server read the first attempt once resumed: the retry is its duplicate.
    ack = await alice.publish("orders", "paid", idempotency_key=key)
    assert (ack.offset, ack.duplicate) == (1, True)
    assert (await next_message(sub)).text == "paid"
    await assert_no_message(sub)


# The automatic retries, against a real Redis. The node gives up on a Redis
# call after 200 ms (`redis.command_timeout`): a publish sent to a hung Redis
# is answered OUTCOME_UNKNOWN, and while the node waits for Redis to answer
# again, later ones are answered UNAVAILABLE after up to 200 ms. It checks
# Redis's health every 100 ms (default 1 s), so that it finds Redis answering
# right after a SIGCONT.


@pytest.fixture
def redis() -> Iterator[Redis]:
    r = Redis()
    try:
        yield r
    finally:
        r.kill()


@pytest.fixture
async def redis_node(redis: Redis) -> AsyncIterator[Server]:
    """A server node on `redis`, ready, that has published once.

    That first publish makes Redis load the server's publish script, which
    the server sends as EVALSHA and loads only when Redis answers NOSCRIPT.
    On a fresh Redis, the first publish sent to a hung Redis would get that
    answer only after the resume, from a node that gave up on it: it would
    never be applied (its OUTCOME_UNKNOWN is still right, but these tests
    are about a publish that was)."""
    env = {
        **redis.server_env(),
        "SWITCHBOARD_REDIS__COMMAND_TIMEOUT": "200ms",
        "SWITCHBOARD_REDIS__HEALTH_INTERVAL": "100ms",
    }
    node = Server(env=env)
    try:
        await wait_ready(node)
        async with ServerApi(node.http_url) as api:
            await api.publish("warm-up", "loads the scripts")
        yield node
    finally:
        redis.resume()
        node.kill()


@pytest.fixture
async def connect_node(redis_node: Server) -> AsyncIterator[Connect]:
    """`await connect_node(name, **options)`: a client of `redis_node`."""
    async for make in client_factory(redis_node.url):
        yield make


async def wait_ready(node: Server) -> None:
    """Polls the node's /readyz until it answers 200 (it answers 503 while
    the node cannot reach Redis)."""
    deadline = time.monotonic() + WAIT
    last = ""
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                response = await http.get(f"{node.http_url}/readyz")
            except httpx.HTTPError as e:
                last = repr(e)
            else:
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            await asyncio.sleep(0.05)
    pytest.fail(f"the node was not ready within {WAIT:g} s (last: {last}); its log:\n{node.logs()}")


async def test_publish_retries_while_redis_hangs_and_is_applied_once(
    redis: Redis, connect_node: Connect
) -> None:
    alice = await connect_node("alice")
    bob = await connect_node("bob")
    await alice.join("orders")
    sub = await bob.join("orders")
    redis.pause()
    # The first attempt reaches the hung Redis and is answered
    # OUTCOME_UNKNOWN after 200 ms; the 3 retries (UNAVAILABLE after 200 ms
    # each while Redis hangs) span at least 800 ms, so one is sent after the
    # resume, with the same key, and finds the first attempt applied.
    publish = asyncio.create_task(alice.publish("orders", "paid"))
    await asyncio.sleep(0.7)
    redis.resume()
    ack = await asyncio.wait_for(publish, WAIT)
    assert (ack.offset, ack.duplicate) == (1, True)
    msg = await next_message(sub)
    assert (msg.offset, msg.text, msg.sender) == (1, "paid", "alice")
    await assert_no_message(sub)


async def test_a_publish_whose_outcome_is_unknown_is_retried_with_its_key(
    redis: Redis, redis_node: Server, connect_node: Connect
) -> None:
    alice = await connect_node("alice", publish_retries=0)
    bob = await connect_node("bob")
    await alice.join("orders")
    sub = await bob.join("orders")
    redis.pause()
    try:
        with pytest.raises(ServerError) as unknown:
            await alice.publish("orders", "paid")
    finally:
        redis.resume()
    error = unknown.value
    assert error.code == ErrorCode.ERROR_CODE_OUTCOME_UNKNOWN
    assert error.temporary
    assert error.idempotency_key is not None
    assert GENERATED_KEY.fullmatch(error.idempotency_key)

    await wait_ready(redis_node)
    ack = await alice.publish("orders", "paid", idempotency_key=error.idempotency_key)
    assert (ack.offset, ack.duplicate) == (1, True)
    msg = await next_message(sub)
    assert (msg.offset, msg.text) == (1, "paid")
    await assert_no_message(sub)


async def test_exhausted_retries_report_that_the_outcome_is_unknown(
    redis: Redis, redis_node: Server, connect_node: Connect
) -> None:
    alice = await connect_node("alice", publish_retries=2)
    bob = await connect_node("bob")
    await alice.join("orders")
    sub = await bob.join("orders")
    redis.pause()
    started = time.monotonic()
    try:
        with pytest.raises(ServerError) as failed:
            await alice.publish("orders", "paid", idempotency_key="order-3")
    finally:
        redis.resume()
    assert time.monotonic() - started >= 0.55  # three attempts of ~200 ms each
    # The first attempt may have been applied; a node that knows Redis hangs
    # answers the later ones UNAVAILABLE (not sent), which does not make the
    # publish's outcome known: the error says OUTCOME_UNKNOWN.
    error = failed.value
    assert error.code == ErrorCode.ERROR_CODE_OUTCOME_UNKNOWN
    assert error.idempotency_key == "order-3"

    await wait_ready(redis_node)
    ack = await alice.publish("orders", "paid", idempotency_key="order-3")
    assert (ack.offset, ack.duplicate) == (1, True)
    assert (await next_message(sub)).text == "paid"
    await assert_no_message(sub)


async def test_close_ends_the_publish_retries(redis: Redis, connect_node: Connect) -> None:
    alice = await connect_node("alice", publish_retries=1000)
    await alice.join("orders")
    redis.pause()
    publish = asyncio.create_task(alice.publish("orders", "never confirmed"))
    await asyncio.sleep(0.8)  # a few attempts failed; retrying
    assert not publish.done()
    started = time.monotonic()
    await alice.close()
    with pytest.raises(ConnectionClosedError) as closed:
        await asyncio.wait_for(publish, WAIT)
    assert time.monotonic() - started < 2.0
    assert closed.value.code == 1000
    assert closed.value.idempotency_key is not None
    assert GENERATED_KEY.fullmatch(closed.value.idempotency_key)
