"""A slow KYC partner never holds the write transaction: the session is opened before the
customer's write begins, so other partners' writes, creates included, go on meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest

from customers.v1 import customers_pb2, resources_pb2
from server.app import RunningServer
from tests.helpers.wallets import caip10, new_wallet
from tests.integration.conftest import GrpcPartner, make_partner

LATENCY = 2.0  # seconds the sandbox KYC partner takes to open each session


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"sandbox_kyc_latency_seconds": LATENCY}


def _create(partner: GrpcPartner) -> asyncio.Future[resources_pb2.Customer]:
    request = customers_pb2.CreateCustomerRequest(
        chain_id=caip10(new_wallet()), external_id=uuid.uuid4().hex
    )
    call = partner.customers.CreateCustomer(request, metadata=partner.metadata)
    return asyncio.ensure_future(call)


async def test_other_partners_write_while_a_create_waits_on_the_kyc_partner(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    slow = await make_partner(server, channel)
    other = await make_partner(server, channel)
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
