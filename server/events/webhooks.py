"""Webhook delivery, in the background of every replica: the relay turns committed events
into delivery rows, the dispatcher POSTs them, signed the Standard Webhooks way.

- Nothing is held only in memory: a delivery is a row (store/webhooks.py) from the moment
  its event is relayed, and a worker holds it under a lease, so a crash or restart loses
  nothing (an expired lease makes it due again: at-least-once, receivers dedupe on eventId).
- No API call waits on a receiver, and no receiver waits on another: at most
  PER_RECEIVER_LIMIT concurrent POSTs per callback host:port, GLOBAL_LIMIT in all, and a
  delivery is only claimed when its receiver has a free slot, so a slow receiver's backlog
  stays in the table instead of occupying slots.
- Every attempt resolves the callback host itself and, outside development mode, refuses it
  unless every address is public; the connection then goes to one of exactly those checked
  addresses (events/egress.py), so a DNS answer that changes between check and connect
  (DNS rebinding) cannot redirect it. Redirects are not followed, cookies are not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import http.cookiejar
import json
import random
from collections import Counter
from collections.abc import Awaitable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import httpx
import structlog
from standardwebhooks import Webhook

from server.domain.deliveries import signing_secrets
from server.domain.webhooks import DeliveryState, RetrySchedule, receiver
from server.events.egress import (
    AddressNotAllowed,
    GuardedNetworkBackend,
    GuardedTransport,
    HostNotResolved,
    Resolve,
    system_resolve,
)
from server.events.failures import round_failed
from server.services.ports import Clock
from server.store.webhooks import (
    CANDIDATES_PER_SLOT,
    Claimed,
    Claims,
    Outcome,
    SqlWebhookStore,
)

log = structlog.get_logger(__name__)

GLOBAL_LIMIT = 64
PER_RECEIVER_LIMIT = 4
CLAIM_GATHER_SECONDS = 0.002
NEW_RECEIVERS = 2  # receivers with nothing under way that one claim makes room for
RELAY_BATCH = 500
POLL_SECONDS = 1.0  # the fallback when no wake-up comes
STOP_GRACE_SECONDS = 5.0
USER_AGENT = "customers-webhooks/1"
DRAIN_LIMIT = 16 * 1024  # bytes of a receiver's answer read (and dropped) to keep-alive

T = TypeVar("T")


def signed_request(claimed: Claimed, *, at: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt: `webhook-id` is the event id on every attempt,
    the timestamp and signature are fresh. During a secret rotation's overlap the
    signature header holds one `v1,<sig>` per secret, space-separated (Standard Webhooks):
    a receiver verifying with either secret accepts it."""
    text = json.dumps(claimed.payload, separators=(",", ":"))
    message_id = str(claimed.event_id)
    secrets = signing_secrets(
        claimed.secret, claimed.previous_secret, claimed.previous_secret_until, now=at
    )
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(
            Webhook(secret).sign(message_id, at, text) for secret in secrets
        ),
    }
    return text.encode(), headers


def _failure(exc: Exception) -> str:
    """A short, fixed description: nothing the receiver sent is ever stored or shown."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "receiver broke the HTTP protocol"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return "callback URL not usable"
    return f"transport error ({type(exc).__name__})"


@dataclass(frozen=True)
class DeliveryOptions:
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    timeout: float = 10.0  # seconds for a whole attempt: connect, send, answer
    production: bool = False  # refuse non-public addresses (SSRF)
    global_limit: int = GLOBAL_LIMIT
    per_receiver_limit: int = PER_RECEIVER_LIMIT
    poll: float = POLL_SECONDS

    @property
    def lease(self) -> timedelta:
        """How long a claim is ours: well past an attempt's hard timeout, so a live worker
        never loses its lease, and short enough that a dead one's work resumes soon."""
        return timedelta(seconds=self.timeout * 3)


@dataclass
class _InFlight:
    claimed: Claimed
    receiver: str
    task: asyncio.Task[None] | None = None
    posting: bool = True  # False once the outcome is being written (never cut that short)


@dataclass(frozen=True)
class _Seen:
    """What a claim that read every due delivery outside its busy subscriptions found: due
    work, if any, only for `subscriptions` (as of `at`, after `relays` relay rounds)."""

    subscriptions: frozenset[UUID]
    at: datetime
    relays: int


class WebhookWorker:
    """The relay and the dispatcher of one replica. `wake()` says events may have committed
    (here or on another replica); without it both poll every `options.poll` seconds."""

    def __init__(
        self,
        store: SqlWebhookStore,
        clock: Clock,
        options: DeliveryOptions,
        *,
        resolve: Resolve = system_resolve,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: what the POSTs go through; by default the guarded one below (the
        address checks). Service tests give an in-memory receiver (httpx.MockTransport)."""
        self._store = store
        self._clock = clock
        self._options = options
        self._resolve = resolve
        self._transport = transport
        self._relay_wanted = asyncio.Event()
        self._dispatch_wanted = asyncio.Event()
        self._in_flight: dict[int, _InFlight] = {}
        self._per_receiver: Counter[str] = Counter()
        self._retries: list[datetime] = []  # heap: when deliveries this worker put off are due
        self._client: httpx.AsyncClient | None = None
        self._transactions: set[asyncio.Task[Any]] = set()  # shielded store calls under way
        self._claiming: asyncio.Task[Claims] | None = None
        self._more = False  # the last claim may have left due deliveries it could take
        self._seen: _Seen | None = None  # the last claim that considered every due delivery
        self._relays = 0  # relay rounds that created deliveries
        self._relayed: frozenset[UUID] | None = None  # partners with a cursor; None: unknown
        # Outcomes of finished attempts, written together by one task (_record_loop).
        self._outcomes: list[Outcome] = []
        self._writing: list[Outcome] = []  # the batch being written
        self._outcomes_due = asyncio.Event()

    def wake(self, partners: Collection[UUID] | None = None) -> None:
        """Events may have committed: those of `partners`, or of anyone (None). Events of
        partners with no subscription leave the relay asleep: no read per commit for them."""
        known = self._relayed
        if partners is not None and known is not None and known.isdisjoint(partners):
            return
        self._relay_wanted.set()

    def forget_relayed(self) -> None:
        """A partner subscribed for the first time: wake for everyone until the relay reads
        the subscribed partners again."""
        self._relayed = None
        self._relay_wanted.set()

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self) -> None:
        limits = httpx.Limits(  # per receiver (events/receiver_pools.py)
            max_connections=self._options.global_limit,
            max_keepalive_connections=self._options.per_receiver_limit,
        )
        backend = GuardedNetworkBackend(resolve=self._resolve, production=self._options.production)
        self._client = httpx.AsyncClient(
            transport=self._transport or GuardedTransport(backend, limits),
            timeout=httpx.Timeout(self._options.timeout),
            follow_redirects=False,
            trust_env=False,
            # A receiver's Set-Cookie is neither kept nor sent back: deliveries are
            # stateless, and the one client is shared by every partner's receivers.
            cookies=http.cookiejar.CookieJar(
                http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            ),
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._relay_loop())
                group.create_task(self._dispatch_loop())
                group.create_task(self._record_loop())
        finally:
            await self._stop_deliveries()
            await self._client.aclose()

    async def _stop_deliveries(self) -> None:
        """Cuts short the POSTs under way, lets running transactions finish, and hands every
        unfinished claim back (fenced by attempt number, so a recorded outcome stays)."""
        unfinished = list(self._in_flight.values())
        for item in unfinished:
            if item.posting and item.task is not None:
                item.task.cancel()
        waiting = {item.task for item in unfinished if item.task is not None}
        waiting |= self._transactions
        if waiting:
            await asyncio.wait(waiting, timeout=STOP_GRACE_SECONDS)
        await self._write_outcomes()  # before the hand-back, which must not undo them
        claims = [item.claimed for item in unfinished]
        claiming = self._claiming
        if (
            claiming is not None
            and claiming.done()
            and not claiming.cancelled()
            and claiming.exception() is None
        ):  # claimed just as we were stopped: never started
            started = {c.delivery_id for c in claims}
            claims += [c for c in claiming.result() if c.delivery_id not in started]
        if claims:
            try:
                await self._store.hand_back(claims, now=self._clock.now())
            except Exception:  # the leases run out instead
                log.warning("could not hand back webhook deliveries", exc_info=True)

    async def _transaction(self, operation: Awaitable[T]) -> T:
        """Runs a store call to its end even when this worker is being stopped: a
        transaction cancelled half-way can leave its connection holding row locks that the
        hand-back would then wait on. Stopping waits for these instead."""
        task = asyncio.ensure_future(operation)
        self._transactions.add(task)
        task.add_done_callback(self._transactions.discard)
        return await asyncio.shield(task)

    # -- relay -----------------------------------------------------------------------------
    async def _relay_loop(self) -> None:
        while True:
            self._relay_wanted.clear()
            try:
                await self.relay_once()
            except Exception as error:  # noqa: BLE001 (round_failed logs it)
                round_failed("webhook relay failed", error)  # tried again on the next round
            await _wait(self._relay_wanted, self._options.poll)

    async def relay_once(self) -> int:
        """Relays everything committed so far; the number of deliveries created."""
        # Read first: a subscription committed after this read makes forget_relayed() run.
        self._relayed = await self._store.relayed_partners()
        created_total = 0
        while True:
            read, created = await self._transaction(
                self._store.relay(now=self._clock.now(), limit=RELAY_BATCH)
            )
            created_total += created
            if created:
                self._relays += 1
                self._dispatch_wanted.set()
            if not read:
                return created_total

    # -- dispatcher ------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        while True:
            self._dispatch_wanted.clear()
            started = 0
            try:
                started = await self.dispatch_once()
            except Exception as error:  # noqa: BLE001 (round_failed logs it)
                round_failed("webhook dispatch failed", error)
            if started and self._worth_claiming_again():
                continue  # more may be due
            await _wait(self._dispatch_wanted, self._until_next_retry())
            if self._in_flight:
                # Woken by a finished POST, most likely: others finish meanwhile, and one
                # claim (a write transaction, serialized on SQLite) then fills them all.
                await asyncio.sleep(CLAIM_GATHER_SECONDS)

    async def dispatch_once(self) -> int:
        """Claims what is due and has a free receiver slot, and starts those POSTs."""
        free = self._options.global_limit - len(self._in_flight)
        self._more = False
        if free <= 0:
            return 0
        limit = self._options.per_receiver_limit
        tentative: Counter[str] = Counter()
        considered: set[UUID] = set()

        def accept(claimed: Claimed) -> bool:
            considered.add(claimed.subscription_id)
            key = receiver(claimed.callback_url)
            if self._per_receiver[key] + tentative[key] + claimed.elsewhere >= limit:
                return False
            tentative[key] += 1
            return True

        busy = self._busy()
        relays = self._relays
        # Rows worth reading: the free slots of receivers under way, and room for a few not
        # under way. Reading a few per global slot instead read ~200 rows per freed slot.
        open_slots = sum(limit - used for used in self._per_receiver.values() if used < limit)
        new_receivers = self._new_receivers()
        candidates = min(free, open_slots + limit * new_receivers) * CANDIDATES_PER_SLOT
        if not candidates:
            return 0  # every receiver with due work is at its limit: nothing to take
        now = self._clock.now()
        self._claiming = asyncio.ensure_future(
            self._store.claim(
                now=now,
                lease_until=now + self._options.lease,
                limit=free,
                busy=busy,
                accept=accept,
                candidates=candidates,
                held=self._held(),
            )
        )
        claims = await self._transaction(self._claiming)
        self._claiming = None
        self._more = claims.more
        if not claims.more and len(claims) < free:
            # Every due delivery outside `busy` was considered: until something new is
            # relayed or comes due, only these subscriptions can have any.
            self._seen = _Seen(frozenset(busy | considered), now, relays)
        for claimed in claims:
            item = _InFlight(claimed, receiver(claimed.callback_url))
            self._in_flight[claimed.delivery_id] = item
            self._per_receiver[item.receiver] += 1
            item.task = asyncio.create_task(self._deliver(item))
        return len(claims)

    def _busy(self) -> set[UUID]:
        """Subscriptions whose receiver has no free slot here."""
        limit = self._options.per_receiver_limit
        return {
            item.claimed.subscription_id
            for item in self._in_flight.values()
            if self._per_receiver[item.receiver] >= limit
        }

    def _worth_claiming_again(self) -> bool:
        """After a claim that started POSTs: claim again at once, or wait for a slot to free?
        Again only if due deliveries the claim could not read may be left for receivers with
        a free slot. When every subscription the last complete read found due work for is
        busy, another claim would walk their whole backlog to find nothing (it was most of
        a delivery's claim cost, once per freed slot)."""
        if not self._more or len(self._in_flight) >= self._options.global_limit:
            return False
        seen = self._still_seen()
        return seen is None or not seen.subscriptions <= self._busy()

    def _still_seen(self) -> _Seen | None:
        """The last complete read's finding, while nothing since can have added due work:
        nothing relayed here, no retry of ours due, and less than a poll interval old (other
        replicas' relays, expired leases, redeliveries: found as a poll would)."""
        seen = self._seen
        if seen is None or seen.relays != self._relays:
            return None
        now = self._clock.now()
        if (now - seen.at).total_seconds() > self._options.poll:
            return None
        if self._retries and self._retries[0] <= now:
            return None
        return seen

    def _new_receivers(self) -> int:
        """How many receivers with nothing under way a claim reads candidates for: none when
        the last complete read found due work only for subscriptions under way (most rows
        such a claim read were turned down: their receiver had one free slot, not nine)."""
        seen = self._still_seen()
        if seen is None:
            return NEW_RECEIVERS
        under_way = {item.claimed.subscription_id for item in self._in_flight.values()}
        return 0 if seen.subscriptions <= under_way else NEW_RECEIVERS

    def _held(self) -> set[int]:
        """Deliveries whose leases are this worker's: under way, or finished with the
        outcome not written yet (their rows still say `delivering`)."""
        held = set(self._in_flight)
        held.update(o.claimed.delivery_id for o in self._outcomes)
        held.update(o.claimed.delivery_id for o in self._writing)
        return held

    # -- outcomes --------------------------------------------------------------------------
    async def _record_loop(self) -> None:
        """Writes the outcomes that finished while the previous write ran, in one
        transaction: batches grow with the rate, with no wait added when it is low."""
        while True:
            await self._outcomes_due.wait()
            self._outcomes_due.clear()
            await self._write_outcomes()

    async def _write_outcomes(self) -> None:
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        self._writing = batch
        try:
            await self._transaction(self._store.finish_all(batch, now=self._clock.now()))
        except Exception as error:  # noqa: BLE001 the leases run out, deliveries tried again
            round_failed("webhook outcomes not recorded", error, deliveries=len(batch))
        finally:
            self._writing = []

    def _until_next_retry(self) -> float:
        now = self._clock.now()
        while self._retries and self._retries[0] <= now:
            heapq.heappop(self._retries)
        if not self._retries:
            return self._options.poll
        wait = (self._retries[0] - now).total_seconds()
        return min(self._options.poll, max(wait, 0.01))

    async def _deliver(self, item: _InFlight) -> None:
        claimed = item.claimed
        try:
            status, error = await self._attempt(claimed)
            item.posting = False
            self._record(claimed, status, error)
        except Exception as error:  # noqa: BLE001 bookkeeping failed: the lease runs out
            round_failed("webhook delivery bookkeeping failed", error, delivery=claimed.delivery_id)
        finally:
            self._in_flight.pop(claimed.delivery_id, None)
            self._per_receiver[item.receiver] -= 1
            if self._per_receiver[item.receiver] <= 0:
                del self._per_receiver[item.receiver]
            self._dispatch_wanted.set()  # a slot is free

    async def _attempt(self, claimed: Claimed) -> tuple[int | None, str | None]:
        """One POST: (HTTP status, None) when an answer came back, else (None, why not)."""
        assert self._client is not None
        content, headers = signed_request(claimed, at=datetime.now(UTC))  # receivers' time
        try:
            async with (
                asyncio.timeout(self._options.timeout),
                self._client.stream(
                    "POST", claimed.callback_url, content=content, headers=headers
                ) as response,
            ):
                # A receiver's answer is not ours to store or echo: a short one is read and
                # dropped, so the connection goes back to the pool for the next delivery
                # (an unread body closes it); a long one is cut off with its connection.
                await _drain(response)
                return response.status_code, None
        except TimeoutError:
            return None, "timed out"
        except AddressNotAllowed:
            return None, "callback address not allowed"
        except HostNotResolved:
            return None, "could not resolve callback host"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return None, _failure(exc)
        except Exception as exc:
            # Whatever else the POST raised is still this attempt failing: recorded, backed
            # off, failed at max age. Left to _deliver it would be "bookkeeping failed", the
            # row stuck in `delivering` and retried every lease with no backoff (issue 13).
            log.warning("webhook attempt raised", delivery=claimed.delivery_id, exc_info=True)
            return None, f"transport error ({type(exc).__name__})"

    def _record(self, claimed: Claimed, status: int | None, error: str | None) -> None:
        if status is not None and 200 <= status < 300:
            self._outcome(Outcome(claimed, DeliveryState.DELIVERED, None, status, None))
            return
        now = self._clock.now()
        retry_at = self._options.schedule.next_attempt(
            attempt=claimed.attempt,
            created_at=claimed.created_at,
            now=now,
            jitter=random.random(),
        )
        reason = error or f"HTTP {status}"
        if retry_at is None:
            log.warning(
                "webhook delivery failed for good",
                delivery=claimed.delivery_id,
                event_id=str(claimed.event_id),
                attempts=claimed.attempt,
                reason=reason,
            )
            state = DeliveryState.FAILED
        else:
            state = DeliveryState.PENDING
            heapq.heappush(self._retries, retry_at)
        self._outcome(Outcome(claimed, state, retry_at, status, reason))

    def _outcome(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        self._outcomes_due.set()


async def _drain(response: httpx.Response) -> None:
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > DRAIN_LIMIT:
            return


async def _wait(event: asyncio.Event, seconds: float) -> None:
    # asyncio.timeout, not wait_for: Python 3.11's wait_for returns normally when it is
    # cancelled just as the event is set, swallowing the cancellation, and the loop then
    # never stops (a worker's shutdown hung; tests/unit/services/test_webhook_delivery.py).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
