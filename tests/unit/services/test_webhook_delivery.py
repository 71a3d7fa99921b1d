"""The webhook relay and dispatcher's rules (server/events/webhooks.py) over an in-memory
delivery store and an in-memory receiver (httpx.MockTransport): no database, no network."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import httpx
import pytest

from server.domain.webhooks import DeliveryState, RetrySchedule
from server.events.webhooks import DeliveryOptions, WebhookWorker
from server.store.webhooks import Claimed, Outcome
from tests.fakes import FixedClock
from tests.fakes.providers import START
from tests.fakes.webhooks import FakeDeliveries

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SCHEDULE = RetrySchedule(base=timedelta(seconds=10), max_age=timedelta(hours=1))
WAIT = 5.0  # seconds; only a failing test waits this long (a logged traceback takes ~1 s)

Receiver = Callable[[httpx.Request], Awaitable[httpx.Response]]


def delivery(
    number: int,
    url: str = "https://hooks.example.com/in",
    *,
    attempt: int = 1,
    age: timedelta = timedelta(0),
    elsewhere: int = 0,
) -> Claimed:
    return Claimed(
        delivery_id=number,
        attempt=attempt,
        event_id=uuid.uuid4(),
        subscription_id=uuid.uuid4(),
        callback_url=url,
        secret=SECRET,
        payload={"type": "customer.updated", "n": number},
        created_at=START - age,
        elsewhere=elsewhere,
    )


def answer(status: int) -> httpx.Response:
    """An answer whose body is still to be read, as one off the network is."""
    return httpx.Response(status, stream=httpx.ByteStream(b"thanks"))


def answering(status: int) -> Receiver:
    async def receive(request: httpx.Request) -> httpx.Response:
        return answer(status)

    return receive


@contextlib.asynccontextmanager
async def running(
    store: FakeDeliveries, receive: Receiver, **options: object
) -> AsyncIterator[WebhookWorker]:
    worker = WebhookWorker(
        store,  # type: ignore[arg-type]
        FixedClock(),
        DeliveryOptions(schedule=SCHEDULE, poll=3600.0, **options),  # type: ignore[arg-type]
        transport=httpx.MockTransport(receive),
    )
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 (polls a fake's state; nothing to wait on)
            await asyncio.sleep(0.001)


def outcome_of(store: FakeDeliveries, number: int) -> Outcome:
    return next(o for o in store.finished if o.claimed.delivery_id == number)


async def test_a_2xx_answer_delivers_and_the_post_is_signed_with_the_event_id() -> None:
    seen: list[httpx.Request] = []

    async def receive(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(204)

    claimed = delivery(1)
    store = FakeDeliveries(claimed)
    async with running(store, receive):
        await until(lambda: len(store.finished) == 1)
    done = outcome_of(store, 1)
    assert (done.state, done.status, done.error, done.next_attempt_at) == (
        DeliveryState.DELIVERED,
        204,
        None,
        None,
    )
    [request] = seen
    assert request.method == "POST" and str(request.url) == claimed.callback_url
    assert request.headers["webhook-id"] == str(claimed.event_id)
    assert request.headers["webhook-signature"].startswith("v1,")
    assert store.handed_back == []


async def test_a_cookie_a_receiver_sets_is_not_sent_back() -> None:
    seen: list[httpx.Request] = []

    async def receive(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            204, headers={"set-cookie": "session=abc; Path=/"}, stream=httpx.ByteStream(b"")
        )

    store = FakeDeliveries(delivery(1), delivery(2))
    async with running(store, receive, per_receiver_limit=1):
        await until(lambda: len(store.finished) == 2)
    assert len(seen) == 2
    assert all("cookie" not in request.headers for request in seen)


async def test_a_failed_attempt_is_put_off_on_the_backoff_schedule() -> None:
    store = FakeDeliveries(delivery(1, attempt=1), delivery(2, attempt=3))
    async with running(store, answering(503)):
        await until(lambda: len(store.finished) == 2)
    first, third = outcome_of(store, 1), outcome_of(store, 2)
    for outcome in (first, third):
        assert outcome.state is DeliveryState.PENDING
        assert (outcome.status, outcome.error) == (503, "HTTP 503")
    assert first.next_attempt_at is not None and third.next_attempt_at is not None
    # base 10 s doubled per attempt, times a jitter in [0.75, 1.25)
    assert START + timedelta(seconds=7.5) <= first.next_attempt_at < START + timedelta(seconds=12.5)
    assert START + timedelta(seconds=30) <= third.next_attempt_at < START + timedelta(seconds=50)


async def test_a_delivery_past_its_max_age_fails_for_good() -> None:
    store = FakeDeliveries(delivery(1, attempt=9, age=SCHEDULE.max_age))
    async with running(store, answering(500)):
        await until(lambda: len(store.finished) == 1)
    failed = outcome_of(store, 1)
    assert (failed.state, failed.next_attempt_at, failed.error) == (
        DeliveryState.FAILED,
        None,
        "HTTP 500",
    )


async def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def _explode(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("something odd")


@pytest.mark.parametrize(
    ("receive", "said"), [(_refuse, "could not connect"), (_explode, "transport error")]
)
async def test_an_unreachable_or_broken_receiver_is_an_ordinary_failed_attempt(
    receive: Receiver, said: str
) -> None:
    store = FakeDeliveries(delivery(1))
    async with running(store, receive):
        await until(lambda: len(store.finished) == 1)
    failed = outcome_of(store, 1)
    assert failed.state is DeliveryState.PENDING
    assert failed.status is None and failed.error is not None
    assert failed.error.startswith(said)
    assert failed.next_attempt_at is not None


async def test_at_most_the_per_receiver_limit_is_under_way_to_one_receiver() -> None:
    under_way: dict[str, int] = {}
    peak: dict[str, int] = {}
    gate = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        under_way[host] = under_way.get(host, 0) + 1
        peak[host] = max(peak.get(host, 0), under_way[host])
        await gate.wait()
        under_way[host] -= 1
        return answer(200)

    busy = [delivery(n, "https://busy.example.com/in") for n in range(6)]
    other = [delivery(n, "https://calm.example.com/in") for n in range(6, 8)]
    store = FakeDeliveries(*busy, *other)
    async with running(store, slow, per_receiver_limit=2):
        await until(lambda: sum(under_way.values()) == 4)
        await asyncio.sleep(0.02)
        assert under_way == {"busy.example.com": 2, "calm.example.com": 2}
        assert len(store.due) == 4  # the rest stays in the table, not in a slot
        gate.set()
        await until(lambda: len(store.finished) == 8)
    assert peak == {"busy.example.com": 2, "calm.example.com": 2}


async def test_attempts_other_workers_have_under_way_count_against_the_limit() -> None:
    crowded = delivery(1, "https://crowded.example.com/in", elsewhere=2)
    free = delivery(2, "https://free.example.com/in", elsewhere=1)
    store = FakeDeliveries(crowded, free)
    async with running(store, answering(200), per_receiver_limit=2):
        await until(lambda: len(store.finished) == 1)
        await asyncio.sleep(0.02)
    assert [o.claimed.delivery_id for o in store.finished] == [2]
    assert store.due == [crowded]


async def test_stopping_hands_back_what_is_under_way_and_keeps_what_was_recorded() -> None:
    gate = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        if request.url.host == "hangs.example.com":
            await gate.wait()
        return answer(200)

    hanging = delivery(1, "https://hangs.example.com/in")
    quick = delivery(2, "https://quick.example.com/in")
    store = FakeDeliveries(hanging, quick)
    async with running(store, hang):
        await until(lambda: len(store.finished) == 1)
    assert [o.claimed.delivery_id for o in store.finished] == [2]
    assert store.handed_back == [hanging]


@pytest.mark.parametrize(
    ("woken_for", "relays"),
    [("stranger", 0), ("subscriber", 1), ("anyone", 1)],
)
async def test_the_relay_wakes_for_commits_of_subscribed_partners_only(
    woken_for: str, relays: int
) -> None:
    subscriber, stranger = uuid.uuid4(), uuid.uuid4()
    store = FakeDeliveries(subscribed=[subscriber])
    async with running(store, answering(200)) as worker:
        await until(lambda: store.relays == 1)  # the first round, at start
        partners = {"stranger": [stranger], "subscriber": [subscriber], "anyone": None}[woken_for]
        worker.wake(partners)
        await asyncio.sleep(0.02)
        assert store.relays == 1 + relays


async def test_a_first_subscription_wakes_the_relay_for_everyone_until_it_reads_again() -> None:
    subscriber, newcomer = uuid.uuid4(), uuid.uuid4()
    store = FakeDeliveries(subscribed=[subscriber])
    async with running(store, answering(200)) as worker:
        await until(lambda: store.relays == 1)
        store.subscribed = frozenset({subscriber, newcomer})
        worker.forget_relayed()  # the newcomer's cursor was made
        await until(lambda: store.relays == 2)
        worker.wake([newcomer])
        await until(lambda: store.relays == 3)
