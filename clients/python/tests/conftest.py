"""Shared test harness: a real server process on 127.0.0.1, port 0.

Every wait is bounded: servers must print their address within
`STARTUP_TIMEOUT`, stop within `STOP_TIMEOUT`, and pytest-timeout bounds
each test as a whole.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO = PYTHON_DIR.parent.parent
# The test-only schemas (switchboard.testing.v1) and the example app's types
# (chat.v1) are not part of the installed package: take them from the
# generated tree. Appended, so the installed `switchboard` comes first and
# the namespace package merges `switchboard.testing` in from here.
sys.path.append(str(PYTHON_DIR / "gen"))

import switchboard.client  # noqa: E402
from switchboard.client import Client  # noqa: E402

STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

_LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")


def pytest_sessionstart(session: pytest.Session) -> None:
    """The tests exercise the installed package (test.sh installs it); refuse
    to run against an install older than the sources."""
    installed = Path(switchboard.client.__file__).parent
    source = PYTHON_DIR / "src" / "switchboard" / "client"
    if installed == source:
        return
    stale = [
        path.name
        for path in sorted(source.glob("*.py"))
        if not (installed / path.name).exists()
        or (installed / path.name).read_bytes() != path.read_bytes()
    ]
    if stale:
        raise pytest.UsageError(
            f"the installed switchboard.client ({installed}) differs from src/ in {stale}: "
            "reinstall it (clients/python/test.sh does)"
        )


def server_binary() -> Path:
    return Path(os.environ.get("SWITCHBOARD_BIN", REPO / "target" / "debug" / "switchboard"))


class Server:
    """One `switchboard serve` process."""

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        listen: str = "127.0.0.1:0",
        config: Path | None = None,
    ) -> None:
        binary = server_binary()
        if not binary.exists():
            raise RuntimeError(f"server binary not found: {binary} (set SWITCHBOARD_BIN)")
        full_env = dict(os.environ)
        full_env.setdefault("SWITCHBOARD_LIMITS__CLOSE_TIMEOUT", "300ms")
        full_env.setdefault("SWITCHBOARD_SHUTDOWN_TIMEOUT", "2s")
        full_env.update(env or {})
        # Server logs, shown when it fails to start.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by kill())
        self.process = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--listen",
                listen,
                *(["--config", str(config)] if config is not None else []),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=full_env,
        )
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            # Keep reading stdout so the server never blocks on a full pipe.
            assert self.process.stdout is not None
            for raw in self.process.stdout:
                lines.put(raw.decode("utf-8", "replace"))

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        first = self._first_line(lines)
        match = _LISTENING.search(first)
        if match is None:
            logs = self.logs()
            self.kill()
            raise RuntimeError(f"unexpected first line {first!r}: {logs}")
        self.host, self.port = match.group(1), int(match.group(2))
        self.url = f"ws://{self.host}:{self.port}/ws"
        self.http_url = f"http://{self.host}:{self.port}"

    def _first_line(self, lines: queue.Queue[str]) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                return lines.get(timeout=0.05)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
        code = self.process.poll()
        logs = self.logs()
        self.kill()
        state = f"exited with {code}" if code is not None else "printed nothing in time"
        raise RuntimeError(f"server {state}; its log:\n{logs}")

    def logs(self) -> str:
        if self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> int | None:
        """SIGTERM (graceful: connections get close 1001), then wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
        # The process is gone: its stdout reaches EOF and the pump ends.
        self._pump.join(timeout=STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()

    def pause(self) -> None:
        """SIGSTOP, and wait until every thread has stopped."""
        pause_process(self.process, "server")

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def pause_process(process: subprocess.Popen[bytes], what: str) -> None:
    """SIGSTOP, and wait until every thread has stopped: a busy machine can
    take a while to stop a thread that was woken by the signal."""
    process.send_signal(signal.SIGSTOP)
    tasks = Path(f"/proc/{process.pid}/task")
    if not tasks.exists():  # not Linux: give the signal a moment
        time.sleep(0.2)
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while not all(_thread_stopped(stat) for stat in tasks.glob("*/stat")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not stop on SIGSTOP")
        time.sleep(0.005)


def _thread_stopped(stat: Path) -> bool:
    try:
        # The state follows the parenthesised command name: "T" is stopped.
        return stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return True  # the thread is gone


class Redis:
    """One `redis-server` process (the binary from PATH) on a free
    127.0.0.1 port, in memory only (no snapshot, no append-only file), for
    tests of the server's Redis broker."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed (not on PATH): scripts/test.sh installs it "
                "(apt-get install redis-server)",
                pytrace=False,
            )
        # The free port is found by binding and releasing it, so another
        # process may take it first: then redis-server exits; try another.
        failures: list[str] = []
        for _ in range(3):
            self.port = _free_port()
            self.url = f"redis://127.0.0.1:{self.port}"
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by kill())
            self.process = subprocess.Popen(
                [
                    binary,
                    *("--bind", "127.0.0.1", "--port", str(self.port)),
                    *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                ],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            failure = self._wait_answering()
            if failure is None:
                return
            failures.append(failure)
            self.kill()
        raise RuntimeError("redis-server did not start:\n" + "\n".join(failures))

    def _wait_answering(self) -> str | None:
        """Waits until it answers PING; the failure, or None."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited with {self.process.returncode} on port {self.port}: {self.logs()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return None
            except OSError:
                pass
            time.sleep(0.02)
        return f"no answer on port {self.port} within {STARTUP_TIMEOUT:g} s: {self.logs()}"

    def server_env(self) -> dict[str, str]:
        """The server settings that make it use this Redis as its broker."""
        return {"SWITCHBOARD_BROKER": "redis", "SWITCHBOARD_REDIS_URL": self.url}

    def logs(self) -> str:
        if self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-4000:]

    def pause(self) -> None:
        """Freezes it (SIGSTOP), as a hung Redis: its sockets stay open and
        nothing is answered."""
        pause_process(self.process, "redis-server")

    def resume(self) -> None:
        """Undoes `pause` (SIGCONT)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """Resumes and kills it, and waits until it is gone. Idempotent."""
        self.resume()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.resume()
        s.kill()


Connect = Callable[..., Awaitable[Client]]
"""`make(name, **options)`: connects a client."""


async def client_factory(url: str) -> AsyncIterator[Connect]:
    """Yields `make(name, **options)`, which connects a client to `url`;
    every client made is closed afterwards."""
    clients: list[Client] = []

    async def make(name: str, **options: object) -> Client:
        client = await Client.connect(url, name=name, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def connect(server: Server) -> AsyncIterator[object]:
    """`await connect(name, **options)`: a client of `server`, closed after the test."""
    async for make in client_factory(server.url):
        yield make


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails a test that made asyncio or the SDK log an error (a task that
    died unobserved, a future whose exception nobody read, a failed
    callback)."""
    yield
    errors = [
        record
        for phase in ("setup", "call", "teardown")
        for record in caplog.get_records(phase)
        if record.levelno >= logging.ERROR
        and record.name.split(".")[0] in ("asyncio", "switchboard")
    ]
    assert not errors, "errors logged: " + "; ".join(r.getMessage() for r in errors)
