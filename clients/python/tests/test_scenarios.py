"""Conformance scenarios (tests/scenarios/*.json), replayed through the SDK's
public API against a fresh server each, with the rules of
proto/switchboard/testing/v1/scenario.proto."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtoMessage

from chat.v1 import chat_pb2
from switchboard.client import (
    Client,
    ConnectionState,
    Content,
    DirectMessage,
    Message,
    Notification,
    ServerError,
    StateChange,
    Subscription,
    TypeRegistry,
)
from switchboard.testing.v1 import scenario_pb2
from switchboard.v1 import errors_pb2, pushes_pb2, types_pb2

from conftest import REPO, Server

SCENARIOS = REPO / "tests" / "scenarios"
TYPES: list[type[ProtoMessage]] = [chat_pb2.ChatMessage, chat_pb2.TypingEvent]
REGISTRY = TypeRegistry(TYPES)
DEFAULT_PUSH_TIMEOUT_MS = 5000
DEFAULT_NO_PUSH_WAIT_MS = 300
RECONNECT_TIMEOUT = 10.0

T = TypeVar("T")
StreamKey = tuple[str, str]


class ScenarioFailure(AssertionError):
    pass


# Matching (scenario.proto: "every key present in the expected JSON equals the
# actual field; nested messages by the same rule; repeated fields by length
# and element by element").


def _field(message: ProtoMessage, key: str) -> FieldDescriptor:
    descriptor = message.DESCRIPTOR
    field = descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)
    if field is None:
        raise ScenarioFailure(f"{descriptor.full_name} has no field {key!r}")
    return field


def _repeated(field: FieldDescriptor) -> bool:
    # Older runtimes (e.g. protobuf 6.30) have only `label`.
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _scalar(message: ProtoMessage, key: str, value: Any, field: FieldDescriptor) -> Any:
    """The expected JSON scalar (or list of scalars) as the Python value the
    field holds: int64 strings, base64 bytes and enum names parsed the
    proto3 JSON way."""
    holder = type(message)()
    json_format.ParseDict({key: value}, holder)
    parsed = getattr(holder, field.name)
    return list(parsed) if _repeated(field) else parsed


def mismatches(expected: dict[str, Any], actual: ProtoMessage, path: str = "") -> list[str]:
    problems: list[str] = []
    for key, want in expected.items():
        field = _field(actual, key)
        where = f"{path}{field.name}"
        got = getattr(actual, field.name)
        if field.message_type is not None:
            if _repeated(field):
                if len(want) != len(got):
                    problems.append(f"{where}: {len(got)} elements, expected {len(want)}")
                    continue
                for i, (w, g) in enumerate(zip(want, got, strict=True)):
                    problems += mismatches(w, g, f"{where}[{i}].")
            else:
                problems += mismatches(want, got, f"{where}.")
        else:
            value = _scalar(actual, key, want, field)
            if _repeated(field):
                got = list(got)
            if value != got:
                problems.append(f"{where}: got {got!r}, expected {value!r}")
    return problems


def check_match(expected: dict[str, Any], actual: ProtoMessage, what: str) -> None:
    problems = mismatches(expected, actual)
    if problems:
        raise ScenarioFailure(f"{what} does not match: {'; '.join(problems)}\n  actual: {actual}")


def get(raw: dict[str, Any], snake: str) -> Any:
    """A key of a scenario JSON object, in either spelling proto3 JSON allows."""
    head, *rest = snake.split("_")
    camel = head + "".join(part.capitalize() for part in rest)
    return raw[camel] if camel in raw else raw[snake]


# The SDK's values, seen as the protocol messages the scenarios expect. A
# typed value is re-encoded, so "decodes and re-encodes to the same bytes" is
# what gets checked.


def wire_payload(item: Message | DirectMessage | Notification) -> types_pb2.Payload:
    data = item.data
    if item.type_name in REGISTRY:
        if item.value is None:
            raise ScenarioFailure(f"registered type {item.type_name} arrived undecoded")
        data = item.value.SerializeToString()
    elif item.value is not None:
        raise ScenarioFailure(f"unregistered type {item.type_name!r} was decoded")
    return types_pb2.Payload(text=item.text, data=data, type_name=item.type_name)


def as_room_message(m: Message) -> pushes_pb2.RoomMessage:
    return pushes_pb2.RoomMessage(
        id=m.id,
        room=m.room,
        offset=m.offset,
        sender=m.sender,
        timestamp_ms=m.timestamp_ms,
        payload=wire_payload(m),
    )


def as_direct_message(m: DirectMessage) -> pushes_pb2.DirectMessage:
    return pushes_pb2.DirectMessage(
        id=m.id, sender=m.sender, timestamp_ms=m.timestamp_ms, payload=wire_payload(m)
    )


def as_notification(n: Notification) -> pushes_pb2.Notification:
    return pushes_pb2.Notification(
        id=n.id, room=n.room, timestamp_ms=n.timestamp_ms, payload=wire_payload(n)
    )


def content_of(payload: types_pb2.Payload) -> Content:
    """How an app would send `payload` through the SDK: registered types via
    the typed API, plain text as a string, anything else as a Payload."""
    cls = REGISTRY.get(payload.type_name)
    if cls is not None and not payload.text:
        return cls.FromString(payload.data)
    if payload.text and not payload.data and not payload.type_name:
        return payload.text
    return payload


class Actor:
    """One scenario client: the SDK client plus every push it received, in
    per-stream queues (room messages, presence and notifications per room,
    direct messages)."""

    def __init__(self, alias: str, client: Client) -> None:
        self.alias = alias
        self.client = client
        self.streams: defaultdict[StreamKey, asyncio.Queue[ProtoMessage]] = defaultdict(
            asyncio.Queue
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.errors: list[BaseException] = []
        self.subs: dict[str, Subscription] = {}
        # After `drop_connection`: resolved with the next CONNECTED (or
        # CLOSED) change, and the function that stops watching for it.
        self._back: tuple[asyncio.Future[StateChange], Callable[[], None]] | None = None
        self._pump(client.direct_messages(), lambda m: (("direct", ""), as_direct_message(m)))
        self._pump(client.notifications(), lambda n: (("notification", n.room), as_notification(n)))

    def _pump(
        self, source: AsyncIterator[T], convert: Callable[[T], tuple[StreamKey, ProtoMessage]]
    ) -> None:
        async def run() -> None:
            try:
                async for item in source:
                    key, message = convert(item)
                    self.streams[key].put_nowait(message)
            except BaseException as e:  # reported when the scenario ends
                self.errors.append(e)

        self.tasks.append(asyncio.create_task(run()))

    def subscribed(self, sub: Subscription) -> None:
        room = sub.room
        self.subs[room] = sub
        self._pump(sub, lambda m: (("message", m.room), as_room_message(m)))
        self._pump(sub.presence_events(), lambda e: (("presence", room), e))

    def drop_connection(self) -> None:
        """Drops the transport. The actor's next step waits until the client
        is connected again, its rooms rejoined (see `recovered`)."""
        back: asyncio.Future[StateChange] = asyncio.get_running_loop().create_future()

        def changed(change: StateChange) -> None:
            # CONNECTED follows the connect reply and every rejoin.
            settles = change.state in (ConnectionState.CONNECTED, ConnectionState.CLOSED)
            if settles and not back.done():
                back.set_result(change)

        self._back = (back, self.client.on_state_change(changed))
        self.client._drop_connection_for_testing()

    async def recovered(self) -> None:
        """Waits for the reconnect after a `drop_connection`, so that the
        actor's next step runs on the new connection (as in the Rust
        runner), while other clients act during the outage."""
        if self._back is None:
            return
        (back, unwatch), self._back = self._back, None
        try:
            change = await asyncio.wait_for(back, RECONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            raise ScenarioFailure(
                f"{self.alias} did not reconnect within {RECONNECT_TIMEOUT:g} s"
            ) from None
        finally:
            unwatch()
        if change.state is not ConnectionState.CONNECTED:
            raise ScenarioFailure(f"{self.alias} closed instead of reconnecting: {change}")

    async def stop(self) -> None:
        if self._back is not None:
            self._back[1]()
        await self.client.close()
        done, _ = await asyncio.wait(self.tasks, timeout=5)
        for task in self.tasks:
            task.cancel()
        if len(done) != len(self.tasks):
            raise ScenarioFailure(f"{self.alias}: receive loops did not end after close")


def expect_error(expected: int, call: str, error: ServerError | None) -> None:
    if expected:
        want = errors_pb2.ErrorCode.Name(expected)
        if error is None:
            raise ScenarioFailure(f"{call} succeeded, expected {want}")
        if error.code != expected:
            raise ScenarioFailure(f"{call} failed with {error.code_name}, expected {want}")
    elif error is not None:
        raise ScenarioFailure(f"{call} failed: {error}")


class Runner:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.actors: dict[str, Actor] = {}

    def actor(self, alias: str) -> Actor:
        if alias not in self.actors:
            raise ScenarioFailure(f"client {alias!r} acts before its connect step")
        return self.actors[alias]

    async def run(self, scenario: scenario_pb2.Scenario, raw: dict[str, Any]) -> None:
        raw_steps = raw["steps"]
        assert len(raw_steps) == len(scenario.steps)
        try:
            for index, (step, raw_step) in enumerate(zip(scenario.steps, raw_steps, strict=True)):
                action = step.WhichOneof("action")
                if action is None:
                    raise ScenarioFailure(f"step {index} has no action")
                try:
                    current = self.actors.get(step.client)
                    if current is not None:
                        await current.recovered()
                    await getattr(self, f"step_{action}")(step, get(raw_step, action))
                except Exception as e:
                    raise ScenarioFailure(
                        f"{scenario.name}: step {index} ({step.client} {action}): {e}"
                    ) from e
        finally:
            for actor in self.actors.values():
                await actor.stop()
        for actor in self.actors.values():
            if actor.errors:
                raise ScenarioFailure(f"{actor.alias}: receive loop failed: {actor.errors[0]!r}")

    async def step_connect(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        error: ServerError | None = None
        try:
            client = await Client.connect(self.server.url, name=step.connect.name, types=TYPES)
        except ServerError as e:
            error = e
        expect_error(step.connect.expect_error, "connect", error)
        if error is None:
            previous = self.actors.get(step.client)
            if previous is not None:
                await previous.stop()
            self.actors[step.client] = Actor(step.client, client)

    async def step_join(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        join = step.join
        actor = self.actor(step.client)
        since = join.since if join.HasField("since") else None
        error: ServerError | None = None
        try:
            sub = await actor.client.join(
                join.room, since=since, presence_events=join.presence_events
            )
        except ServerError as e:
            error = e
        expect_error(join.expect_error, "join", error)
        if error is not None:
            return
        if join.HasField("expect_recovered") and sub.recovered != join.expect_recovered:
            raise ScenarioFailure(f"recovered = {sub.recovered}, expected {join.expect_recovered}")
        actor.subscribed(sub)

    async def step_leave(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        error: ServerError | None = None
        try:
            await self.actor(step.client).client.leave(step.leave.room)
        except ServerError as e:
            error = e
        expect_error(step.leave.expect_error, "leave", error)

    async def step_publish(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        publish = step.publish
        error: ServerError | None = None
        try:
            ack = await self.actor(step.client).client.publish(
                publish.room,
                content_of(publish.payload),
                idempotency_key=publish.idempotency_key or None,
            )
        except ServerError as e:
            error = e
        expect_error(publish.expect_error, "publish", error)
        if error is not None:
            return
        if publish.expect_offset and ack.offset != publish.expect_offset:
            raise ScenarioFailure(f"ack offset {ack.offset}, expected {publish.expect_offset}")
        if ack.duplicate != publish.expect_duplicate:
            raise ScenarioFailure(
                f"ack duplicate = {ack.duplicate}, expected {publish.expect_duplicate}"
            )

    async def step_direct(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        direct = step.direct
        error: ServerError | None = None
        try:
            await self.actor(step.client).client.direct(direct.user, content_of(direct.payload))
        except ServerError as e:
            error = e
        expect_error(direct.expect_error, "direct", error)

    async def step_history(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        history = step.history
        error: ServerError | None = None
        try:
            page = await self.actor(step.client).client.history(
                history.room, limit=history.limit, before=history.before, after=history.after
            )
        except ServerError as e:
            error = e
        expect_error(history.expect_error, "history", error)
        if error is not None:
            return
        expected = raw.get("expectMessages", raw.get("expect_messages", []))
        offsets = [m.offset for m in page.messages]
        if len(page.messages) != len(expected):
            raise ScenarioFailure(
                f"history returned {len(page.messages)} messages (offsets {offsets}), "
                f"expected {len(expected)}"
            )
        for i, (want, got) in enumerate(zip(expected, page.messages, strict=True)):
            check_match(want, as_room_message(got), f"history message {i}")
        if page.has_more != history.expect_has_more:
            raise ScenarioFailure(f"has_more = {page.has_more}, expected {history.expect_has_more}")

    async def step_presence(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        presence = step.presence
        error: ServerError | None = None
        try:
            members = await self.actor(step.client).client.presence(presence.room)
        except ServerError as e:
            error = e
        expect_error(presence.expect_error, "presence", error)
        if error is not None:
            return
        users = sorted(m.user for m in members)
        if users != sorted(presence.expect_users):
            raise ScenarioFailure(f"members {users}, expected {sorted(presence.expect_users)}")

    async def step_expect_push(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        expect = step.expect_push
        kind = expect.WhichOneof("push")
        if kind is None:
            raise ScenarioFailure("expect_push names no push")
        wanted: ProtoMessage = getattr(expect, kind)
        stream: StreamKey = {
            "message": ("message", expect.message.room),
            "direct_message": ("direct", ""),
            "notification": ("notification", expect.notification.room),
            "member_joined": ("presence", expect.member_joined.room),
            "member_left": ("presence", expect.member_left.room),
        }[kind]
        timeout = (expect.timeout_ms or DEFAULT_PUSH_TIMEOUT_MS) / 1000
        queue = self.actor(step.client).streams[stream]
        try:
            got = await asyncio.wait_for(queue.get(), timeout)
        except asyncio.TimeoutError:
            raise ScenarioFailure(f"no {kind} on stream {stream} within {timeout:g} s") from None
        if got.DESCRIPTOR is not wanted.DESCRIPTOR:
            raise ScenarioFailure(f"next push of {stream} is a {got.DESCRIPTOR.name}: {got}")
        check_match(get(raw, kind), got, kind)

    async def step_expect_no_push(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        await asyncio.sleep((step.expect_no_push.wait_ms or DEFAULT_NO_PUSH_WAIT_MS) / 1000)
        unread = {key: q.qsize() for key, q in self.actor(step.client).streams.items()}
        unread = {key: n for key, n in unread.items() if n}
        if unread:
            first = next(iter(unread))
            sample = self.actor(step.client).streams[first].get_nowait()
            raise ScenarioFailure(f"unexpected pushes {unread}; first: {sample}")

    async def step_drop_connection(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        self.actor(step.client).drop_connection()

    async def step_close(self, step: scenario_pb2.Step, raw: dict[str, Any]) -> None:
        await self.actor(step.client).client.close()


def scenario_files() -> list[Any]:
    files = sorted(SCENARIOS.glob("*.json"))
    if not files:
        # No scenarios is a failure, not a skip.
        return [pytest.param(None, id="scenarios-missing")]
    return [pytest.param(path, id=path.stem) for path in files]


@pytest.mark.parametrize("path", scenario_files())
async def test_scenario(path: Path | None, server: Server) -> None:
    assert path is not None, f"no scenario in {SCENARIOS}"
    text = path.read_text(encoding="utf-8")  # noqa: ASYNC240 (a small local file)
    scenario = json_format.Parse(text, scenario_pb2.Scenario())
    assert scenario.name == path.stem, "a scenario's name is its file's stem"
    assert scenario.steps, "a scenario has steps"
    await Runner(server).run(scenario, json.loads(text))
