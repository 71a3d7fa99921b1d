"""A stream's bounded inbox: one producer (the hub), one consumer (the stream's task).

asyncio.Queue would do, and did: its put and get (the getters' deque, the loop check on
every get, the unfinished-tasks event, a wake-up walk per put) were a tenth of the worker's
samples when one change fanned out to 2,000 streams (py-spy). With a single consumer all
that is one optional future.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """The subset of asyncio.Queue the hub and its streams use, with the same exceptions
    (QueueFull, QueueEmpty). One task at a time may wait in `get`."""

    __slots__ = ("_items", "_limit", "_waiter")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque()
        self._limit = maxsize
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        if len(self._items) >= self._limit:
            raise asyncio.QueueFull
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("a Mailbox has one consumer")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)
