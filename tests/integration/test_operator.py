"""Internal services over mTLS (SPEC section 13), with the real server on its TLS port:
certificates refused at the handshake, principals and roles, partners over the same port,
the operator's suspend / reinstate / reject with their cascade, events and audit rows, and
the cross-partner stream. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import pathlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from client.idempotency import IdempotencyKeyInterceptor
from customers.v1 import (
    accounts_pb2,
    customers_pb2,
    events_pb2,
    operator_pb2,
    operator_pb2_grpc,
    resources_pb2,
)
from server.app import RunningServer
from tests.helpers.certificates import Issued, TestCA, client_credentials
from tests.integration.conftest import GrpcPartner, make_partner, signed_channel

COMPLIANCE = "spiffe://customers.internal/compliance"
SUPPORT = "spiffe://customers.internal/support"
WATCHER_DNS = "stream-watcher.customers.internal"


@dataclass
class Pki:
    ca: TestCA
    server: Issued
    compliance: Issued  # operator
    support: Issued  # reader
    watcher: Issued  # watcher, by DNS SAN
    partner: Issued  # from the CA, naming no principal (a partner's client certificate)
    foreign: Issued  # the right names, another CA
    expired: Issued  # the compliance identity, expired
    principals_file: pathlib.Path


@pytest.fixture
def pki() -> Pki:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="pki-"))
    ca = TestCA(folder)
    principals = folder / "internal-services.json"
    principals.write_text(
        json.dumps(
            {
                "services": [
                    {"name": "compliance", "identity": COMPLIANCE, "roles": ["operator"]},
                    {"name": "support", "identity": SUPPORT, "roles": ["reader"]},
                    {"name": "streams", "identity": WATCHER_DNS, "roles": ["watcher"]},
                ]
            }
        )
    )
    other = TestCA(folder, name="someone else's CA")
    return Pki(
        ca=ca,
        server=ca.server_certificate(),
        compliance=ca.issue("compliance", uris=(COMPLIANCE,)),
        support=ca.issue("support", uris=(SUPPORT,)),
        watcher=ca.issue("watcher", dns=(WATCHER_DNS,)),
        partner=ca.issue("partner-acme", dns=("acme.partners.example",)),
        foreign=other.issue("impostor", uris=(COMPLIANCE,)),
        expired=ca.issue("compliance-old", uris=(COMPLIANCE,), expired=True),
        principals_file=principals,
    )


@pytest.fixture
def server_settings(pki: Pki) -> dict[str, Any]:
    return {
        "grpc_tls_cert_file": str(pki.server.cert_file),
        "grpc_tls_key_file": str(pki.server.key_file),
        "grpc_client_ca_file": str(pki.ca.cert_file),
        "internal_services": str(pki.principals_file),
    }


_channels: list[grpc.aio.Channel] = []


def tls_channel(server: RunningServer, pki: Pki, client: Issued | None) -> grpc.aio.Channel:
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{server.port}", client_credentials(pki.ca, client)
    )
    _channels.append(channel)
    return channel


@pytest.fixture(autouse=True)
async def _close_channels() -> AsyncIterator[None]:
    yield
    while _channels:
        await _channels.pop().close()


@pytest.fixture
async def channel(server: RunningServer, pki: Pki) -> grpc.aio.Channel:
    """Partners' unsigned channel (token, first key) over TLS, with their certificate."""
    opened = grpc.aio.secure_channel(
        f"127.0.0.1:{server.port}",
        client_credentials(pki.ca, pki.partner),
        interceptors=[IdempotencyKeyInterceptor()],
    )
    _channels.append(opened)
    return opened


@pytest.fixture
async def partner(server: RunningServer, channel: grpc.aio.Channel, pki: Pki) -> GrpcPartner:
    return await make_partner(server, channel, client_credentials(pki.ca, pki.partner))


@pytest.fixture
async def other_partner(server: RunningServer, channel: grpc.aio.Channel, pki: Pki) -> GrpcPartner:
    return await make_partner(server, channel, client_credentials(pki.ca, pki.partner))


def operator_as(server: RunningServer, pki: Pki, client: Issued | None):  # type: ignore[no-untyped-def]
    return operator_pb2_grpc.OperatorServiceStub(tls_channel(server, pki, client))


def reason_of(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    raise AssertionError(f"no ErrorInfo in {error}")


async def audit_rows(server: RunningServer, customer_id: str) -> list[dict[str, Any]]:
    async with server.container.engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                "SELECT principal, action, reason, entity, entity_id, partner_id, at"
                " FROM operator_actions ORDER BY id"
            )
        )
        return [
            dict(r._mapping)
            for r in rows
            if str(r.entity_id).replace("-", "") == customer_id.replace("-", "")
        ]


async def events_of(partner: GrpcPartner) -> list[events_pb2.Event]:
    answer = await partner.events.ListEvents(
        events_pb2.ListEventsRequest(page_size=1000), metadata=partner.metadata
    )
    return list(answer.events)


async def with_account_and_card(
    partner: GrpcPartner,
) -> tuple[resources_pb2.Customer, resources_pb2.Account, resources_pb2.Card]:
    customer = await partner.active_customer()
    account = await partner.accounts.CreateAccount(
        accounts_pb2.CreateAccountRequest(
            customer_id=customer.id, type=resources_pb2.Account.card_account, currencies=["EUR"]
        ),
        metadata=partner.metadata,
    )
    card = await partner.cards.CreateCard(
        accounts_pb2.CreateCardRequest(account_id=account.id, type=resources_pb2.Card.virtual),
        metadata=partner.metadata,
    )
    return customer, account, card


# -- the handshake ---------------------------------------------------------------------


@pytest.mark.parametrize("who", ["foreign", "expired", "none"])
async def test_a_wrong_ca_expired_or_missing_client_certificate_is_refused_at_the_handshake(
    server: RunningServer, pki: Pki, who: str
) -> None:
    client = {"foreign": pki.foreign, "expired": pki.expired, "none": None}[who]
    channel = tls_channel(server, pki, client)
    # Even the public health check: no call of any kind gets past the handshake.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as also:
        await operator_pb2_grpc.OperatorServiceStub(channel).GetCustomer(
            operator_pb2.OperatorGetCustomerRequest(customer_id=COMPLIANCE), timeout=5
        )
    assert also.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_plain_text_client_is_refused_by_the_tls_port(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as plain:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(plain).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


# -- principals and roles ----------------------------------------------------------------


async def test_a_reader_reads_any_partners_customers_accounts_and_cards(
    server: RunningServer, pki: Pki, partner: GrpcPartner, other_partner: GrpcPartner
) -> None:
    customer, account, card = await with_account_and_card(partner)
    theirs = await other_partner.active_customer()
    reader = operator_as(server, pki, pki.support)

    found = await reader.GetCustomer(
        operator_pb2.OperatorGetCustomerRequest(customer_id=customer.id)
    )
    assert found.customer == customer
    assert found.partner_id == partner.partner_id
    assert not found.HasField("suspension_reason")
    other = await reader.GetCustomer(operator_pb2.OperatorGetCustomerRequest(customer_id=theirs.id))
    assert other.partner_id == other_partner.partner_id

    listed = await reader.ListCustomers(
        operator_pb2.OperatorListCustomersRequest(partner_id=partner.partner_id)
    )
    assert [c.customer.id for c in listed.customers] == [customer.id]  # filtered by partner
    assert (
        await reader.GetAccount(operator_pb2.OperatorGetAccountRequest(account_id=account.id))
    ) == account
    assert (await reader.GetCard(operator_pb2.OperatorGetCardRequest(card_id=card.id))) == card
    accounts = await reader.ListAccounts(accounts_pb2.ListAccountsRequest(customer_id=customer.id))
    assert list(accounts.accounts) == [account]
    cards = await reader.ListCards(accounts_pb2.ListCardsRequest(account_id=account.id))
    assert list(cards.cards) == [card]

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await reader.GetCustomer(operator_pb2.OperatorGetCustomerRequest(customer_id=account.id))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await reader.ListCustomers(operator_pb2.OperatorListCustomersRequest(partner_id="acme"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(bad.value) == "INVALID_FIELD"


async def test_a_principal_outside_its_roles_is_permission_denied_and_changes_nothing(
    server: RunningServer, pki: Pki, partner: GrpcPartner
) -> None:
    customer = await partner.active_customer()
    before = await events_of(partner)
    reader = operator_as(server, pki, pki.support)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await reader.SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="looks odd")
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(denied.value) == "PRINCIPAL_NOT_ALLOWED"
    assert "'operator'" in (denied.value.details() or "")

    watcher = operator_as(server, pki, pki.watcher)
    with pytest.raises(grpc.aio.AioRpcError) as not_a_reader:
        await watcher.GetCustomer(operator_pb2.OperatorGetCustomerRequest(customer_id=customer.id))
    assert not_a_reader.value.code() == grpc.StatusCode.PERMISSION_DENIED

    operator = operator_as(server, pki, pki.compliance)
    stream = operator.WatchAllCustomers(operator_pb2.WatchAllCustomersRequest())
    with pytest.raises(grpc.aio.AioRpcError) as not_a_watcher:
        await stream.read()
    assert not_a_watcher.value.code() == grpc.StatusCode.PERMISSION_DENIED

    got = await partner.customers.GetCustomer(
        customers_pb2.GetCustomerRequest(customer_id=customer.id), metadata=partner.metadata
    )
    assert got.status == resources_pb2.Customer.active
    assert await events_of(partner) == before
    assert await audit_rows(server, customer.id) == []


async def test_a_partner_can_never_call_operator_methods(
    server: RunningServer, pki: Pki, partner: GrpcPartner
) -> None:
    customer = await partner.active_customer()
    # Its own certificate from the CA, its token and signature: still no principal.
    assert partner.key is not None
    signed = operator_pb2_grpc.OperatorServiceStub(
        signed_channel(server, partner.key, client_credentials(pki.ca, pki.partner))
    )
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await signed.SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="self-service"),
            metadata=partner.metadata,
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(denied.value) == "PRINCIPAL_NOT_ALLOWED"
    # The gateway's socket carries no client certificate at all.
    async with grpc.aio.insecure_channel(f"unix:{server.gateway_socket}") as gateway:
        with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
            await operator_pb2_grpc.OperatorServiceStub(gateway).GetCustomer(
                operator_pb2.OperatorGetCustomerRequest(customer_id=customer.id),
                metadata=partner.metadata,
            )
    assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(unauthenticated.value) == "CLIENT_CERTIFICATE_REQUIRED"
    assert await audit_rows(server, customer.id) == []


async def test_partner_native_calls_work_over_the_tls_port(partner: GrpcPartner) -> None:
    customer = await partner.active_customer()  # token, signature, idempotency: all over TLS
    listed = await partner.customers.ListCustomers(
        customers_pb2.ListCustomersRequest(), metadata=partner.metadata
    )
    assert [c.id for c in listed.customers] == [customer.id]
    with pytest.raises(grpc.aio.AioRpcError) as unsigned:
        await partner.customers.ListCustomers(customers_pb2.ListCustomersRequest())
    assert unsigned.value.code() == grpc.StatusCode.UNAUTHENTICATED
