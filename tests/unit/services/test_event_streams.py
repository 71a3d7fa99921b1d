"""The stream fan-out (server/events/hub.py) and one stream's seam between backlog and live
events (server/events/watch.py), over the fake unit of work: no gRPC, no database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest

from server.domain.errors import StreamLagging
from server.domain.events import ChangeEvent, EventType
from server.domain.limits import TooManyStreams
from server.events import hub as hub_module
from server.events.hub import EventHub
from server.events.watch import CustomerWatch, EveryoneWatch
from tests.fakes import FakeUnitOfWorkFactory
from tests.fakes.providers import START

HEARTBEAT = 3600.0  # no tick unless a test asks for one
WAIT = 1.0  # seconds a test waits for a message that must come


def change(
    partner_id: UUID, customer_id: UUID, kind: EventType = EventType.CUSTOMER_UPDATED
) -> ChangeEvent:
    return ChangeEvent(
        event_id=uuid.uuid4(),
        partner_id=partner_id,
        type=kind,
        entity_id=customer_id,
        payload={"id": str(customer_id)},
        occurred_at=START,
    )


@contextmanager
def running(hub: EventHub) -> Iterator[EventHub]:
    task = asyncio.get_running_loop().create_task(hub.run())
    try:
        yield hub
    finally:
        task.cancel()


async def next_of(stream: AsyncIterator[Any]) -> Any:
    return await asyncio.wait_for(anext(stream), WAIT)


async def nothing_more(stream: AsyncIterator[Any]) -> bool:
    """True when the stream yields nothing within a short wait. The wait is cancelled in
    the stream, which ends it: call it last."""
    waiting = asyncio.ensure_future(anext(stream))
    done, _ = await asyncio.wait({waiting}, timeout=0.05)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await waiting
    return not done


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def hub(uow: FakeUnitOfWorkFactory) -> EventHub:
    return EventHub(uow, heartbeat=HEARTBEAT)  # type: ignore[arg-type]


def commit(uow: FakeUnitOfWorkFactory, hub: EventHub, *events: ChangeEvent) -> list[ChangeEvent]:
    """Events committed in this process: the store numbers them, the hub is told."""
    committed = uow.store.commit_events(*events)
    hub.published(committed)
    return committed


async def test_a_stream_from_now_opens_with_a_heartbeat_then_gets_what_commits_after(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    partner, customer = uuid.uuid4(), uuid.uuid4()
    commit(uow, hub, change(partner, customer))  # before the stream: not sent
    watch = CustomerWatch(hub=hub, uow=uow)  # type: ignore[arg-type]
    with running(hub):
        stream = watch.stream(partner_id=partner, after=None, customer_id=None)
        assert await next_of(stream) is None
        [later] = commit(uow, hub, change(partner, customer))
        assert (await next_of(stream)).event_id == later.event_id
        assert await nothing_more(stream)
        await stream.aclose()


async def test_backlog_then_live_events_with_no_gap_and_no_duplicate_at_the_seam(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    partner, customer = uuid.uuid4(), uuid.uuid4()
    watch = CustomerWatch(hub=hub, uow=uow)  # type: ignore[arg-type]
    with running(hub):
        earlier = watch.stream(partner_id=partner, after=None, customer_id=None)
        assert await next_of(earlier) is None  # the hub's cursor for the partner: 0
        # Committed on another replica; its notification has not come yet.
        first, second = uow.store.commit_events(
            change(partner, customer), change(partner, customer)
        )
        stream = watch.stream(partner_id=partner, after=0, customer_id=None)
        # Subscribing wakes the fan-out, which offers both to the new stream too; its
        # backlog has sent them already, so the live copies are dropped.
        assert [(await next_of(stream)).seq for _ in range(2)] == [first.seq, second.seq]
        [third] = commit(uow, hub, change(partner, customer))
        assert (await next_of(stream)).seq == third.seq
        assert await nothing_more(stream)
        assert [(await next_of(earlier)).seq for _ in range(3)] == [1, 2, 3]
        await stream.aclose()
        await earlier.aclose()


async def test_a_stream_sees_only_customer_updates_of_its_partner_and_its_customer(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    partner, other_partner = uuid.uuid4(), uuid.uuid4()
    mine, other = uuid.uuid4(), uuid.uuid4()
    watch = CustomerWatch(hub=hub, uow=uow)  # type: ignore[arg-type]
    with running(hub):
        stream = watch.stream(partner_id=partner, after=None, customer_id=mine)
        assert await next_of(stream) is None
        commit(uow, hub, change(partner, other))
        commit(uow, hub, change(partner, mine, EventType.ACCOUNT_UPDATED))
        commit(uow, hub, change(other_partner, mine))
        [wanted] = commit(uow, hub, change(partner, mine))
        assert (await next_of(stream)).event_id == wanted.event_id
        assert await nothing_more(stream)
        await stream.aclose()


async def test_one_read_per_partner_per_wake_up_serves_every_stream(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    partner, customer = uuid.uuid4(), uuid.uuid4()
    watch = CustomerWatch(hub=hub, uow=uow)  # type: ignore[arg-type]
    with running(hub):
        streams = [watch.stream(partner_id=partner, after=None, customer_id=None) for _ in "abc"]
        for stream in streams:
            assert await next_of(stream) is None
        await asyncio.sleep(0.01)  # the subscribers' own wake-ups are read
        reads_before = len(uow.made)
        [event] = commit(uow, hub, change(partner, customer))
        for stream in streams:
            assert (await next_of(stream)).event_id == event.event_id
        assert len(uow.made) - reads_before == 1
        for stream in streams:
            await stream.aclose()
    assert hub.stream_count == 0


async def test_events_of_a_partner_nobody_watches_cost_no_read(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    with running(hub):
        commit(uow, hub, change(uuid.uuid4(), uuid.uuid4()))
        await asyncio.sleep(0.01)
    assert uow.made == []


async def test_a_partner_over_its_stream_cap_is_refused_and_a_closed_stream_frees_its_place(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    partner = uuid.uuid4()
    watch = CustomerWatch(hub=hub, uow=uow, max_streams=2)  # type: ignore[arg-type]
    with running(hub):
        open_ = [watch.stream(partner_id=partner, after=None, customer_id=None) for _ in "ab"]
        for stream in open_:
            await next_of(stream)
        refused = watch.stream(partner_id=partner, after=None, customer_id=None)
        with pytest.raises(TooManyStreams):
            await next_of(refused)
        # Another partner has a cap of its own.
        elsewhere = watch.stream(partner_id=uuid.uuid4(), after=None, customer_id=None)
        assert await next_of(elsewhere) is None
        await open_[0].aclose()
        again = watch.stream(partner_id=partner, after=None, customer_id=None)
        assert await next_of(again) is None
        for stream in (open_[1], elsewhere, again):
            await stream.aclose()


async def test_a_stream_that_falls_behind_is_cut_off_and_told_where_to_resume(
    uow: FakeUnitOfWorkFactory, hub: EventHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "QUEUE_LIMIT", 2)
    partner, customer = uuid.uuid4(), uuid.uuid4()
    watch = CustomerWatch(hub=hub, uow=uow)  # type: ignore[arg-type]
    with running(hub):
        slow = watch.stream(partner_id=partner, after=None, customer_id=None)
        assert await next_of(slow) is None
        events = commit(uow, hub, *(change(partner, customer) for _ in range(3)))
        await asyncio.sleep(0.01)  # fanned out while the stream reads nothing
        assert hub.stream_count == 0  # dropped: it no longer slows the others
        # What fitted in its queue still arrives, then the stream ends where it got to.
        assert [(await next_of(slow)).seq for _ in range(2)] == [e.seq for e in events[:2]]
        with pytest.raises(StreamLagging) as lagging:
            await next_of(slow)
    assert lagging.value.args == StreamLagging(events[1].seq).args


async def test_a_quiet_stream_hears_a_heartbeat_each_tick_and_a_busy_one_does_not(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    quiet_partner, busy_partner, customer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    quiet = await hub.subscribe(quiet_partner, None)
    busy = await hub.subscribe(busy_partner, None)
    everyone = await hub.subscribe_everyone()
    with running(hub):
        await asyncio.sleep(0.005)  # the subscribers' own wake-ups are read
        commit(uow, hub, change(busy_partner, customer))
        await asyncio.sleep(0.005)
    assert busy.queue.get_nowait() is not None and everyone.queue.get_nowait() is not None
    hub.tick()  # both were offered the event since the last tick: no heartbeat
    assert busy.queue.empty() and everyone.queue.empty()
    assert quiet.queue.get_nowait() is None
    hub.tick()  # idle since the last tick now
    assert [q.queue.get_nowait() for q in (quiet, busy, everyone)] == [None, None, None]
    quiet.queue.put_nowait(None)
    hub.tick()  # one unread heartbeat is enough
    assert quiet.queue.qsize() == 1


async def test_a_failed_read_is_retried_on_the_next_wake_up(
    uow: FakeUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_wait(asyncio.sleep))  # the retry's pause
    flaky = _Flaky(uow)
    hub = EventHub(flaky, heartbeat=HEARTBEAT)  # type: ignore[arg-type]
    partner, customer = uuid.uuid4(), uuid.uuid4()
    watch = CustomerWatch(hub=hub, uow=uow)  # type: ignore[arg-type]
    with running(hub):
        stream = watch.stream(partner_id=partner, after=None, customer_id=None)
        assert await next_of(stream) is None
        await asyncio.sleep(0.005)
        flaky.fail_next = True
        [event] = commit(uow, hub, change(partner, customer))
        assert (await next_of(stream)).event_id == event.event_id
        assert flaky.failures == 1
        await stream.aclose()


class _Flaky:
    """The fake unit-of-work factory, whose next unit of work fails to open when told."""

    def __init__(self, inner: FakeUnitOfWorkFactory) -> None:
        self._inner = inner
        self.fail_next = False
        self.failures = 0

    def __call__(self, **kwargs: Any) -> Any:
        if self.fail_next:
            self.fail_next = False
            self.failures += 1
            raise ConnectionError("database went away")
        return self._inner(**kwargs)


def _no_wait(sleep: Any) -> Any:
    """asyncio.sleep, with the pauses under a second (the retry's) cut to a millisecond."""

    async def shortened(seconds: float) -> None:
        await sleep(0.001 if seconds < 1 else seconds)

    return shortened


async def test_the_cross_partner_stream_sees_every_partner_in_commit_order_once(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    a, b, customer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    [old] = commit(uow, hub, change(a, customer))
    watch = EveryoneWatch(hub=hub, uow=uow)  # type: ignore[arg-type]
    with running(hub):
        stream = watch.stream(after=old.position - 1)
        assert (await next_of(stream)).position == old.position
        live = commit(uow, hub, change(b, customer), change(a, customer, EventType.CARD_UPDATED))
        live += commit(uow, hub, change(a, customer))
        got = await next_of(stream), await next_of(stream)
        assert [e.position for e in got] == [live[0].position, live[2].position]
        assert {e.partner_id for e in got} == {a, b}
        assert await nothing_more(stream)
        await stream.aclose()
    assert hub.stream_count == 0


async def test_another_workers_commit_costs_one_check_and_a_read_of_the_changed_partner_only(
    uow: FakeUnitOfWorkFactory, hub: EventHub
) -> None:
    changed, quiet, customer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    watch = CustomerWatch(hub=hub, uow=uow)  # type: ignore[arg-type]
    with running(hub):
        ours = watch.stream(partner_id=changed, after=None, customer_id=None)
        theirs = watch.stream(partner_id=quiet, after=None, customer_id=None)
        assert await next_of(ours) is None
        assert await next_of(theirs) is None
        await asyncio.sleep(0.01)  # the subscribers' own wake-ups are read
        reads_before = len(uow.made)
        hub.wake_changed()  # nothing new anywhere: one check, no read
        await asyncio.sleep(0.01)
        assert len(uow.made) - reads_before == 1
        # Committed by another worker: this process's hub is not told, only that something
        # changed in the file.
        [event] = uow.store.commit_events(change(changed, customer))
        hub.wake_changed()
        assert (await next_of(ours)).event_id == event.event_id
        assert len(uow.made) - reads_before == 3  # the first check, this check, one read
        assert await nothing_more(theirs)
        await ours.aclose()
