"""A short-lived per-process memo for facts read on every request (a partner's credentials
version, its signing keys). Changes made through this process drop the entry at once; other
replicas see a change within `ttl` (docs/DECISIONS.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from server.services.ports import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(self, clock: Clock, ttl: timedelta, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[K, tuple[datetime, V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = self._clock.now()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        value = await load()
        if len(self._entries) >= self._max:
            self._entries.clear()  # crude, and rare: one entry per active partner
        self._entries[key] = (now, value)
        return value

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
