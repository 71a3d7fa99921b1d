"""Idempotency over native gRPC and in the store, with a clock moved by hand."""

from __future__ import annotations

import uuid

import grpc
import pytest

from customers.v1 import customers_pb2
from server.app import RunningServer
from server.domain.errors import CustomerNotFound
from server.domain.idempotency import Decision
from server.store.claims import Claim, active_claim
from server.store.idempotency import StoredAnswer
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


async def test_a_claim_is_exclusive_until_its_lease_runs_out(
    server: RunningServer, partner: GrpcPartner, clock: SteppingClock
) -> None:
    store, partner_id, key = (
        server.container.idempotency,
        uuid.UUID(partner.partner_id),
        uuid.uuid4(),
    )
    first, claim = await store.claim(
        partner_id=partner_id, key=key, fingerprint="a", now=clock.now()
    )
    assert first is Decision.EXECUTE and isinstance(claim, Claim)
    busy, _ = await store.claim(partner_id=partner_id, key=key, fingerprint="a", now=clock.now())
    assert busy is Decision.IN_FLIGHT
    other, _ = await store.claim(partner_id=partner_id, key=key, fingerprint="b", now=clock.now())
    assert other is Decision.REUSED
    clock.advance(seconds=31)
    taken, new_claim = await store.claim(
        partner_id=partner_id, key=key, fingerprint="a", now=clock.now()
    )
    assert taken is Decision.TAKE_OVER and isinstance(new_claim, Claim)
    # The crashed first worker cannot complete or release the claim it lost.
    await store.complete(claim, StoredAnswer(0, None, b"stale"))
    await store.release(claim)
    await store.complete(new_claim, StoredAnswer(0, 201, b"fresh"))
    replay, answer = await store.claim(
        partner_id=partner_id, key=key, fingerprint="a", now=clock.now()
    )
    assert replay is Decision.REPLAY and answer == StoredAnswer(0, 201, b"fresh")


async def test_a_released_claim_lets_a_retry_run_and_the_sweep_drops_expired_keys(
    server: RunningServer, partner: GrpcPartner, clock: SteppingClock
) -> None:
    store, partner_id, key = (
        server.container.idempotency,
        uuid.UUID(partner.partner_id),
        uuid.uuid4(),
    )
    _, claim = await store.claim(partner_id=partner_id, key=key, fingerprint="a", now=clock.now())
    assert isinstance(claim, Claim)
    await store.release(claim)  # what a 5xx does
    again, _ = await store.claim(partner_id=partner_id, key=key, fingerprint="a", now=clock.now())
    assert again is Decision.EXECUTE
    clock.advance(hours=1, seconds=1)
    assert await store.sweep(clock.now()) >= 1


async def test_a_change_commits_only_together_with_its_stored_answer(
    server: RunningServer, partner: GrpcPartner, clock: SteppingClock
) -> None:
    store, partner_id = server.container.idempotency, uuid.UUID(partner.partner_id)
    customers = server.container.customers

    async def create_under(claim: Claim, external_id: str) -> str:
        token = active_claim.set(claim)
        try:
            made = await customers.create(
                partner_id=partner_id, chain_id=caip10(new_wallet()), external_id=external_id
            )
        finally:
            active_claim.reset(token)
        return str(made.customer.id)

    # A request that dies before its answer is stored (5xx, crash): its change never lands.
    key = uuid.uuid4()
    _, claim = await store.claim(partner_id=partner_id, key=key, fingerprint="f", now=clock.now())
    assert isinstance(claim, Claim)
    lost = await create_under(claim, "lost")
    with pytest.raises(CustomerNotFound):
        await customers.get(partner_id=partner_id, customer_id=lost)  # not visible yet
    await store.abandon(claim)
    with pytest.raises(CustomerNotFound):
        await customers.get(partner_id=partner_id, customer_id=lost)
    again, retry = await store.claim(
        partner_id=partner_id, key=key, fingerprint="f", now=clock.now()
    )
    assert again is Decision.EXECUTE and isinstance(retry, Claim)

    # The same request run to the end: change and answer arrive together.
    kept = await create_under(retry, "kept")
    await store.complete(retry, StoredAnswer(0, 201, b"answer"))
    assert str((await customers.get(partner_id=partner_id, customer_id=kept)).id) == kept
    replay, answer = await store.claim(
        partner_id=partner_id, key=key, fingerprint="f", now=clock.now()
    )
    assert replay is Decision.REPLAY and answer == StoredAnswer(0, 201, b"answer")
