"""A bounded buffer between the connection's reader and the app."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    """Returned by `Buffer.get` once the buffer is closed and drained."""

    __slots__ = ()


END = _End()


class Buffer(Generic[T]):
    """A FIFO the reader fills without ever blocking and the app drains.

    The producer decides what happens when it is full (`full()`): drop the
    oldest item (`push_drop_oldest`), or something smarter (subscriptions
    mark a gap). After `close()`, `get()` still returns what is buffered, then
    `END`, or raises the close error.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("buffer capacity must be at least 1")
        self.capacity = capacity
        #: Items dropped by `push_drop_oldest` because the buffer was full.
        self.dropped = 0
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def full(self) -> bool:
        return len(self._items) >= self.capacity

    def last(self) -> T | None:
        return self._items[-1] if self._items else None

    def push(self, item: T) -> None:
        """Appends `item` (the caller has checked `full()`)."""
        if self._closed:
            return
        self._items.append(item)
        self._ready.set()

    def push_drop_oldest(self, item: T) -> None:
        """Appends `item`, dropping the oldest item when full."""
        if self._closed:
            return
        if self.full():
            self._items.popleft()
            self.dropped += 1
        self.push(item)

    def close(self, error: BaseException | None = None) -> None:
        """No more items; readers get the rest, then END (or `error`)."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._ready.set()

    async def get(self) -> T | _End:
        """The next item; waits for one. END once closed and empty."""
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                return END
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()
