"""A slow KYC partner never holds the write transaction: the session is opened before the
customer's write begins, so other partners' writes, creates included, go on meanwhile."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from client.idempotency import IdempotencyKeyInterceptor
from customers.v1 import customers_pb2, resources_pb2
from server import app
from server.app import RunningServer
from server.config import Settings
from tests.helpers.clock import SteppingClock
from tests.helpers.wallets import caip10, new_wallet
from tests.integration.conftest import GrpcPartner, make_partner

LATENCY = 2.0  # seconds the sandbox KYC partner takes to open each session


@pytest.fixture
async def slow_kyc_server(database_url: str) -> AsyncIterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        grpc_port=0,
        metrics_port=0,
        gateway_socket_dir=tempfile.mkdtemp(prefix="cust-"),
        sandbox_kyc_latency_seconds=LATENCY,
    )
    running = await app.start(settings, clock=SteppingClock())
    yield running
    await running.stop(0)


@pytest.fixture
async def slow_channel(slow_kyc_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    address = f"127.0.0.1:{slow_kyc_server.port}"
    interceptors = [IdempotencyKeyInterceptor()]
    async with grpc.aio.insecure_channel(address, interceptors=interceptors) as opened:
        yield opened


def _create(partner: GrpcPartner) -> asyncio.Future[resources_pb2.Customer]:
    request = customers_pb2.CreateCustomerRequest(
        chain_id=caip10(new_wallet()), external_id=uuid.uuid4().hex
    )
    call = partner.customers.CreateCustomer(request, metadata=partner.metadata)
    return asyncio.ensure_future(call)


async def test_other_partners_write_while_a_create_waits_on_the_kyc_partner(
    slow_kyc_server: RunningServer, slow_channel: grpc.aio.Channel
) -> None:
    slow = await make_partner(slow_kyc_server, slow_channel)
    other = await make_partner(slow_kyc_server, slow_channel)
    existing = await other.active_customer()  # takes LATENCY, before anything is watched

    waiting = _create(slow)
    await asyncio.sleep(0.2)  # the slow create is inside the KYC call now
    meanwhile = [_create(other), _create(other), _create(slow)]
    # Writes that call no outside party finish while the first create still waits; with the
    # write transaction held across the KYC call, each would queue behind it.
    for _ in range(3):
        off = await other.customers.DeactivateCustomer(
            customers_pb2.DeactivateCustomerRequest(customer_id=existing.id),
            metadata=other.metadata,
        )
        on = await other.customers.ActivateCustomer(
            customers_pb2.ActivateCustomerRequest(customer_id=existing.id),
            metadata=other.metadata,
        )
        assert (off.status, on.status) == (
            resources_pb2.Customer.inactive,
            resources_pb2.Customer.active,
        )
        assert not waiting.done()
    created = await asyncio.gather(waiting, *meanwhile)
    assert [c.status for c in created] == [resources_pb2.Customer.initiating] * 4
    assert len({c.id for c in created}) == 4
    listed = await other.customers.ListCustomers(
        customers_pb2.ListCustomersRequest(), metadata=other.metadata
    )
    assert len(listed.customers) == 3  # the active one and the two made meanwhile
