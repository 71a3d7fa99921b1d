"""A short-lived per-process memo for facts read on every request (a partner's credentials
version, its signing keys). A change drops the entry once it has committed: through this
process directly, through another replica by PostgreSQL NOTIFY; if a notification is lost,
the entry still lasts no longer than `ttl` (docs/DECISIONS.md, "Signing and the hot path").

Versioned: `forget` bumps the key's generation and `forget_all` the memo's epoch, and a load
stores its result only if neither moved while it ran. So a load that read the old state
before an invalidation can never store it after the invalidation."""

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
        self._generations: dict[K, int] = {}  # bumped by forget
        self._epoch = 0  # bumped by forget_all

    def _version(self, key: K) -> tuple[int, int]:
        return self._epoch, self._generations.get(key, 0)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = self._clock.now()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        started = self._version(key)
        value = await load()
        if self._version(key) == started:  # else invalidated while loading: may be stale
            if len(self._entries) >= self._max:
                self._entries.clear()  # crude, and rare: one entry per active partner
            self._entries[key] = (now, value)
        return value

    def forget(self, key: K) -> None:
        """Drops the entry, and whatever a load already under way would store."""
        self._entries.pop(key, None)
        if len(self._generations) >= self._max:
            self.forget_all()  # keeps the generations bounded; a new epoch stays safe
        self._generations[key] = self._generations.get(key, 0) + 1

    def forget_all(self) -> None:
        """Drops every entry, and whatever loads already under way would store."""
        self._entries.clear()
        self._generations.clear()
        self._epoch += 1
