"""Idempotency over native gRPC and in the store, with a clock moved by hand."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from customers.v1 import customers_pb2
from server.app import RunningServer
from server.domain.errors import CustomerNotFound
from server.domain.idempotency import Decision
from server.store.idempotency import (
    ClaimSettled,
    IdempotentWrite,
    Outcome,
    StoredAnswer,
    Ticket,
)
from server.store.unit_of_work import SecondWriteScope
from tests.helpers.clock import SteppingClock
from tests.helpers.wallets import caip10, new_wallet
from tests.integration.conftest import GrpcPartner
from tests.integration.test_grpc_customers import reason_of


def _request() -> customers_pb2.CreateCustomerRequest:
    return customers_pb2.CreateCustomerRequest(
        chain_id=caip10(new_wallet()), external_id=uuid.uuid4().hex
    )


async def test_grpc_replays_the_same_response_for_the_same_key(partner: GrpcPartner) -> None:
    metadata = (*partner.metadata, ("idempotency-key", str(uuid.uuid4())))
    request = _request()
    first = await partner.customers.CreateCustomer(request, metadata=metadata)
    call = partner.customers.CreateCustomer(request, metadata=metadata)
    again = await call
    assert again == first
    assert ("idempotent-replayed", "true") in tuple(await call.initial_metadata())


async def test_grpc_key_errors_use_grpc_codes_with_reasons(partner: GrpcPartner) -> None:
    key = str(uuid.uuid4())
    metadata = (*partner.metadata, ("idempotency-key", key))
    await partner.customers.CreateCustomer(_request(), metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await partner.customers.CreateCustomer(_request(), metadata=metadata)
    assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(reused.value) == "IDEMPOTENCY_KEY_REUSED"
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await partner.customers.CreateCustomer(
            _request(), metadata=(*partner.metadata, ("idempotency-key", "nope"))
        )
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(invalid.value) == "IDEMPOTENCY_KEY_INVALID"


async def test_a_key_older_than_an_hour_is_not_replayed(
    partner: GrpcPartner, clock: SteppingClock
) -> None:
    metadata = (*partner.metadata, ("idempotency-key", str(uuid.uuid4())))
    request = _request()
    await partner.customers.CreateCustomer(request, metadata=metadata)
    clock.advance(minutes=59)
    replayed = partner.customers.CreateCustomer(request, metadata=metadata)
    await replayed
    assert ("idempotent-replayed", "true") in tuple(await replayed.initial_metadata())
    clock.advance(minutes=1, seconds=1)
    await partner.reauthenticate()
    metadata = (*partner.metadata, metadata[-1])
    with pytest.raises(grpc.aio.AioRpcError) as executed_again:
        await partner.customers.CreateCustomer(request, metadata=metadata)
    # Run again rather than replayed: the customer now exists.
    assert executed_again.value.code() == grpc.StatusCode.ALREADY_EXISTS


def _ticket(partner: GrpcPartner, clock: SteppingClock, fingerprint: str = "f") -> Ticket:
    return Ticket(uuid.UUID(partner.partner_id), uuid.uuid4(), fingerprint, clock.now())


async def _create_within(write: IdempotentWrite, server: RunningServer, external_id: str) -> str:
    """Runs a create as the handler of the idempotent call `write` (its own context)."""

    async def run() -> str:
        with write.bound():
            made = await server.container.customers.create(
                partner_id=write.ticket.partner_id,
                chain_id=caip10(new_wallet()),
                external_id=external_id,
            )
        return str(made.customer.id)

    return await asyncio.create_task(run())


async def test_a_change_commits_only_together_with_its_stored_answer(
    server: RunningServer, partner: GrpcPartner, clock: SteppingClock
) -> None:
    store, customers = server.container.idempotency, server.container.customers
    partner_id = uuid.UUID(partner.partner_id)
    ticket = _ticket(partner, clock)

    # A request that dies before its answer is stored (5xx, crash): nothing of it lands,
    # not even its claim, so a retry runs again at once.
    first = store.write(ticket)
    lost = await _create_within(first, server, "lost")
    with pytest.raises(CustomerNotFound):
        await customers.get(partner_id=partner_id, customer_id=lost)  # not visible yet
    await first.abort()
    with pytest.raises(CustomerNotFound):
        await customers.get(partner_id=partner_id, customer_id=lost)
    assert (await store.lookup(ticket)).decision is Decision.EXECUTE

    # The same request run to the end: change and answer arrive together.
    retry = store.write(ticket)
    kept = await _create_within(retry, server, "kept")
    await retry.complete(StoredAnswer(0, 201, b"answer"))
    assert str((await customers.get(partner_id=partner_id, customer_id=kept)).id) == kept
    assert await store.lookup(ticket) == Outcome(Decision.REPLAY, StoredAnswer(0, 201, b"answer"))


async def test_a_concurrent_duplicate_waits_for_the_claim_then_replays_its_answer(
    server: RunningServer, partner: GrpcPartner, clock: SteppingClock
) -> None:
    store = server.container.idempotency
    ticket = _ticket(partner, clock)
    first = store.write(ticket)
    await _create_within(first, server, "first")  # claimed and changed, not committed
    duplicate = store.write(ticket)
    waiting = asyncio.create_task(_create_within(duplicate, server, "duplicate"))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # held on the claim's row lock (SQLite: the write lock)
    await first.complete(StoredAnswer(0, 201, b"first answer"))
    with pytest.raises(ClaimSettled) as settled:
        await waiting
    assert settled.value.outcome == Outcome(Decision.REPLAY, StoredAnswer(0, 201, b"first answer"))
    await duplicate.abort()
    listed = await server.container.customers.list(
        partner_id=ticket.partner_id, size=10, token="", status=None, external_id="duplicate"
    )
    assert listed.items == []


async def test_a_second_write_scope_in_one_call_is_refused_and_nothing_commits(
    server: RunningServer, partner: GrpcPartner, clock: SteppingClock
) -> None:
    store, uow = server.container.idempotency, server.container.uow
    assert uow is not None
    ticket = _ticket(partner, clock)
    write = store.write(ticket)

    async def handler_with_two_writes() -> None:
        with write.bound():
            await server.container.customers.create(
                partner_id=ticket.partner_id, chain_id=caip10(new_wallet()), external_id="two"
            )
            async with uow(write=True):
                pass

    with pytest.raises(SecondWriteScope):
        await asyncio.create_task(handler_with_two_writes())
    await write.abort()  # what the interceptor does with a server error
    listed = await server.container.customers.list(
        partner_id=ticket.partner_id, size=10, token="", status=None, external_id="two"
    )
    assert listed.items == []
    assert (await store.lookup(ticket)).decision is Decision.EXECUTE


async def test_a_claim_left_in_flight_by_an_older_release_answers_409_until_its_lease_ends(
    server: RunningServer, partner: GrpcPartner, clock: SteppingClock
) -> None:
    """Older releases committed the claim on its own; a crash left it in flight."""
    store, uow = server.container.idempotency, server.container.uow
    assert uow is not None
    ticket = _ticket(partner, clock)
    async with uow(write=True) as opened:
        assert (await store.claim(opened.session, ticket)).runs
        await opened.commit()
    assert (await store.lookup(ticket)).decision is Decision.IN_FLIGHT
    other = Ticket(ticket.partner_id, ticket.key, "another request", ticket.now)
    assert (await store.lookup(other)).decision is Decision.REUSED
    clock.advance(seconds=31)
    later = Ticket(ticket.partner_id, ticket.key, ticket.fingerprint, clock.now())
    assert (await store.lookup(later)).decision is Decision.TAKE_OVER
    retry = store.write(later)
    await _create_within(retry, server, "taken over")
    await retry.complete(StoredAnswer(0, 201, b"fresh"))
    assert await store.lookup(later) == Outcome(Decision.REPLAY, StoredAnswer(0, 201, b"fresh"))


async def test_the_sweep_drops_expired_keys(
    server: RunningServer, partner: GrpcPartner, clock: SteppingClock
) -> None:
    store = server.container.idempotency
    ticket = _ticket(partner, clock)
    await store.store_alone(ticket, StoredAnswer(0, None, b""))
    assert (await store.lookup(ticket)).decision is Decision.REPLAY
    clock.advance(hours=1, seconds=1)
    assert await store.sweep(clock.now()) >= 1
    later = Ticket(ticket.partner_id, ticket.key, ticket.fingerprint, clock.now())
    assert (await store.lookup(later)).decision is Decision.EXECUTE
