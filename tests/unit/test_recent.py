"""The per-process memo (server/services/recent.py): a load that began before an
invalidation never stores its (possibly stale) result after it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from server.services.recent import Recent
from tests.helpers.clock import SteppingClock


def memo() -> Recent[str, str]:
    return Recent(SteppingClock(), timedelta(seconds=2))


def blocked_load(value: str) -> tuple[Callable[[], Awaitable[str]], asyncio.Event, asyncio.Event]:
    """A load that reads `value`, then waits to be released before returning it."""
    started, release = asyncio.Event(), asyncio.Event()

    async def load() -> str:
        started.set()
        await release.wait()
        return value

    return load, started, release


async def fresh(value: str) -> str:
    return value


async def _race(invalidate: Callable[[Recent[str, str]], None]) -> Recent[str, str]:
    recent = memo()
    load, started, release = blocked_load("old")
    loading = asyncio.create_task(recent.get("p", load))
    await started.wait()  # the load has read the old state
    invalidate(recent)  # the change commits
    release.set()
    assert await loading == "old"  # its own caller may see it: it read before the change
    return recent


async def test_a_load_under_way_when_the_key_is_forgotten_is_not_remembered() -> None:
    recent = await _race(lambda r: r.forget("p"))
    assert await recent.get("p", lambda: fresh("new")) == "new"


async def test_a_load_under_way_when_everything_is_forgotten_is_not_remembered() -> None:
    recent = await _race(lambda r: r.forget_all())
    assert await recent.get("p", lambda: fresh("new")) == "new"


async def test_forgetting_another_key_does_not_disturb_a_load() -> None:
    recent = await _race(lambda r: r.forget("q"))
    assert await recent.get("p", lambda: fresh("new")) == "old"


async def test_a_load_begun_after_the_invalidation_is_remembered() -> None:
    recent = memo()
    await recent.get("p", lambda: fresh("old"))
    recent.forget("p")
    assert await recent.get("p", lambda: fresh("new")) == "new"
    assert await recent.get("p", lambda: fresh("newer")) == "new"  # remembered


async def test_entries_expire_after_the_ttl() -> None:
    clock = SteppingClock()
    recent: Recent[str, str] = Recent(clock, timedelta(seconds=2))
    await recent.get("p", lambda: fresh("old"))
    clock.advance(seconds=2)
    assert await recent.get("p", lambda: fresh("new")) == "new"


async def test_bounding_the_generations_never_lets_a_load_under_way_through() -> None:
    recent: Recent[str, str] = Recent(SteppingClock(), timedelta(seconds=2), max_entries=3)
    load, started, release = blocked_load("old")
    loading = asyncio.create_task(recent.get("p", load))
    await started.wait()
    recent.forget("p")
    for key in ["a", "b", "c"]:  # the generations are full: forgetting "c" drops them all
        recent.forget(key)
    release.set()
    await loading
    assert len(recent._generations) <= 3
    assert await recent.get("p", lambda: fresh("new")) == "new"
