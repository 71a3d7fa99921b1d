"""Internal services over mTLS (SPEC section 13), with the real server on its internal
mTLS port (the port Envoy's hop reaches; a direct caller there presents its own
certificate): certificates refused at the handshake, principals and roles, the client
identity Envoy forwards believed from Envoy's certificate alone, partners over that port,
the operator's suspend / reinstate / reject with their cascade, events and audit rows, and
the cross-partner stream. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
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
GATEWAY = "spiffe://customers.internal/gateway-test"


@dataclass
class Pki:
    ca: TestCA
    server: Issued
    compliance: Issued  # operator
    support: Issued  # reader
    watcher: Issued  # watcher, by DNS SAN
    partner: Issued  # from the CA, naming no principal (a partner's client certificate)
    gateway: Issued  # Envoy's hop certificate (CUSTOMERS_GATEWAY_IDENTITY)
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
        gateway=ca.issue("gateway", uris=(GATEWAY,)),
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
        "grpc_internal_port": 0,  # any free port: the test's own
        "gateway_identity": GATEWAY,
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
    server: RunningServer,
    pki: Pki,
    partner: GrpcPartner,
    other_partner: GrpcPartner,
    capfd: pytest.CaptureFixture[str],
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
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if '"call"' in line]
    mine = [e for e in logged if e["method"].startswith("/customers.v1.OperatorService/")]
    assert len(mine) == 7 and all(e["principal"] == "support" for e in mine)
    assert all("principal" not in e for e in logged if e not in mine)

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


def _forwarded(*identities: str) -> tuple[tuple[str, str], ...]:
    """x-forwarded-client-cert as Envoy's SANITIZE_SET writes it (URI and DNS SANs)."""
    parts = [f"{'URI' if '://' in i else 'DNS'}={i}" for i in identities]
    return (("x-forwarded-client-cert", ";".join(["Hash=ab12", *parts])),)


async def test_the_identity_envoy_forwards_over_its_hop_names_the_principal(
    server: RunningServer, pki: Pki, partner: GrpcPartner
) -> None:
    customer = await partner.active_customer()
    via_envoy = operator_as(server, pki, pki.gateway)
    request = operator_pb2.OperatorGetCustomerRequest(customer_id=customer.id)
    found = await via_envoy.GetCustomer(request, metadata=_forwarded(SUPPORT))
    assert found.customer == customer
    found = await via_envoy.GetCustomer(request, metadata=_forwarded("x.example", SUPPORT))
    assert found.customer == customer  # any SAN of the certificate may match
    with pytest.raises(grpc.aio.AioRpcError) as outside_role:
        await via_envoy.SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="x"),
            metadata=_forwarded(SUPPORT),
        )
    assert outside_role.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The client presented no certificate to Envoy: Envoy's own identity is not the caller's.
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await via_envoy.GetCustomer(request)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(anonymous.value) == "CLIENT_CERTIFICATE_REQUIRED"
    # A header Envoy never writes (two elements, a chain) names nobody.
    chained = (("x-forwarded-client-cert", f"URI={SUPPORT},URI={COMPLIANCE}"),)
    with pytest.raises(grpc.aio.AioRpcError) as chain:
        await via_envoy.GetCustomer(request, metadata=chained)
    assert chain.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await audit_rows(server, customer.id) == []


@pytest.mark.parametrize("who", ["partner", "support"])
async def test_a_forwarded_identity_from_anyone_but_envoy_is_ignored(
    server: RunningServer, pki: Pki, partner: GrpcPartner, who: str
) -> None:
    customer = await partner.active_customer()
    caller = operator_as(server, pki, {"partner": pki.partner, "support": pki.support}[who])
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await caller.SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="forged"),
            metadata=_forwarded(COMPLIANCE),
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(denied.value) == "PRINCIPAL_NOT_ALLOWED"
    got = await partner.customers.GetCustomer(
        customers_pb2.GetCustomerRequest(customer_id=customer.id), metadata=partner.metadata
    )
    assert got.status == resources_pb2.Customer.active
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


# -- operator actions --------------------------------------------------------------------


async def test_suspension_cascades_blocks_the_partners_activate_and_reinstate_restores_exactly(
    server: RunningServer, pki: Pki, partner: GrpcPartner
) -> None:
    customer, account, card = await with_account_and_card(partner)
    # Switched off by the partner before the suspension: must stay off after reinstate.
    own = await partner.accounts.CreateAccount(
        accounts_pb2.CreateAccountRequest(
            customer_id=customer.id, type=resources_pb2.Account.card_account, currencies=["USD"]
        ),
        metadata=partner.metadata,
    )
    await partner.accounts.DeactivateAccount(
        accounts_pb2.DeactivateAccountRequest(account_id=own.id), metadata=partner.metadata
    )
    watch = partner.customers.WatchCustomers(
        customers_pb2.WatchCustomersRequest(customer_id=customer.id), metadata=partner.metadata
    )
    assert (await watch.read()).heartbeat  # subscribed
    seen_before = len(await events_of(partner))
    operator = operator_as(server, pki, pki.compliance)

    suspended = await operator.SuspendCustomer(
        operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="sanctions hit, review")
    )
    assert suspended.customer.status == resources_pb2.Customer.inactive
    assert suspended.suspension_reason == "sanctions hit, review"
    streamed = await asyncio.wait_for(watch.read(), 10)
    assert streamed.customer.status == resources_pb2.Customer.inactive

    new = (await events_of(partner))[seen_before:]
    assert sorted((e.webhook_type, _status(e)) for e in new) == [
        ("account.updated", "inactive"),
        ("card.updated", "inactive"),
        ("customer.updated", "inactive"),
    ]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await partner.customers.ActivateCustomer(
            customers_pb2.ActivateCustomerRequest(customer_id=customer.id),
            metadata=partner.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused.value) == "CUSTOMER_SUSPENDED"
    assert "sanctions hit, review" in (refused.value.details() or "")
    # The partner's deactivate is a no-op on it (already inactive); its accounts stay off.
    with pytest.raises(grpc.aio.AioRpcError) as no_account:
        await partner.accounts.ActivateAccount(
            accounts_pb2.ActivateAccountRequest(account_id=account.id), metadata=partner.metadata
        )
    assert no_account.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    again = await operator.SuspendCustomer(
        operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="twice")
    )
    assert again.suspension_reason == "sanctions hit, review"  # a no-op: nothing written

    reinstated = await operator.ReinstateCustomer(
        operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="cleared by review")
    )
    assert reinstated.customer.status == resources_pb2.Customer.active
    assert not reinstated.HasField("suspension_reason")
    reader = operator_as(server, pki, pki.support)
    accounts = await reader.ListAccounts(accounts_pb2.ListAccountsRequest(customer_id=customer.id))
    status_of = {a.id: a.status for a in accounts.accounts}
    assert status_of == {account.id: account.Status.active, own.id: own.Status.inactive}
    got_card = await reader.GetCard(operator_pb2.OperatorGetCardRequest(card_id=card.id))
    assert got_card.status == resources_pb2.Card.active
    watch.cancel()

    audit = await audit_rows(server, customer.id)
    assert [(r["principal"], r["action"], r["reason"], r["entity"]) for r in audit] == [
        ("compliance", "suspend", "sanctions hit, review", "customer"),
        ("compliance", "reinstate", "cleared by review", "customer"),
    ]
    assert all(
        str(r["partner_id"]).replace("-", "") == partner.partner_id.replace("-", "") for r in audit
    )
    assert audit[0]["at"] <= audit[1]["at"]

    with pytest.raises(grpc.aio.AioRpcError) as not_suspended:
        await operator.ReinstateCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="again")
        )
    assert not_suspended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # And now the partner's own switches work again.
    await partner.customers.DeactivateCustomer(
        customers_pb2.DeactivateCustomerRequest(customer_id=customer.id), metadata=partner.metadata
    )
    back = await partner.customers.ActivateCustomer(
        customers_pb2.ActivateCustomerRequest(customer_id=customer.id), metadata=partner.metadata
    )
    assert back.status == resources_pb2.Customer.active


def _status(event: events_pb2.Event) -> str:
    entity = getattr(event, event.WhichOneof("entity") or "customer")
    return str(type(entity).Status.Name(entity.status))


async def test_rejection_is_final_and_switches_off_accounts_and_cards(
    server: RunningServer, pki: Pki, partner: GrpcPartner
) -> None:
    customer, account, card = await with_account_and_card(partner)
    operator = operator_as(server, pki, pki.compliance)
    rejected = await operator.RejectCustomer(
        operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="mule account")
    )
    assert rejected.customer.status == resources_pb2.Customer.rejected
    reader = operator_as(server, pki, pki.support)
    assert (
        await reader.GetAccount(operator_pb2.OperatorGetAccountRequest(account_id=account.id))
    ).status == resources_pb2.Account.inactive
    assert (
        await reader.GetCard(operator_pb2.OperatorGetCardRequest(card_id=card.id))
    ).status == resources_pb2.Card.inactive
    for call in (operator.ReinstateCustomer, operator.SuspendCustomer, operator.RejectCustomer):
        with pytest.raises(grpc.aio.AioRpcError) as final:
            await call(operator_pb2.OperatorActionRequest(customer_id=customer.id, reason="x"))
        assert final.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as partner_too:
        await partner.customers.ActivateCustomer(
            customers_pb2.ActivateCustomerRequest(customer_id=customer.id),
            metadata=partner.metadata,
        )
    assert reason_of(partner_too.value) == "INVALID_STATE_TRANSITION"
    customer_events = [e for e in await events_of(partner) if e.webhook_type == "customer.updated"]
    assert customer_events[-1].customer.status == resources_pb2.Customer.rejected
    audit = await audit_rows(server, customer.id)
    assert [(r["action"], r["reason"]) for r in audit] == [("reject", "mule account")]


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501, "tab\there"])
async def test_an_operator_action_without_a_usable_reason_is_refused_and_changes_nothing(
    server: RunningServer, pki: Pki, partner: GrpcPartner, reason: str
) -> None:
    customer = await partner.active_customer()
    before = await events_of(partner)
    operator = operator_as(server, pki, pki.compliance)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await operator.SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer.id, reason=reason)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "INVALID_FIELD"
    got = await partner.customers.GetCustomer(
        customers_pb2.GetCustomerRequest(customer_id=customer.id), metadata=partner.metadata
    )
    assert got.status == resources_pb2.Customer.active
    assert await events_of(partner) == before
    assert await audit_rows(server, customer.id) == []


async def test_an_operator_action_on_an_unknown_customer_is_not_found(
    server: RunningServer, pki: Pki
) -> None:
    operator = operator_as(server, pki, pki.compliance)
    for customer_id in ("not-a-uuid", "7d1c2d3e-0000-4000-8000-000000000000"):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await operator.SuspendCustomer(
                operator_pb2.OperatorActionRequest(customer_id=customer_id, reason="why")
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


# -- the cross-partner stream ------------------------------------------------------------


async def _changes(
    stream: grpc.aio.UnaryStreamCall, count: int
) -> list[operator_pb2.OperatorCustomerEvent]:
    got: list[operator_pb2.OperatorCustomerEvent] = []

    async def collect() -> None:
        while len(got) < count:
            message = await stream.read()
            assert message is not grpc.aio.EOF
            if not message.heartbeat:
                got.append(message)

    await asyncio.wait_for(collect(), 15)
    return got


async def test_the_cross_partner_stream_resumes_after_a_position_without_gap_or_duplicate(
    server: RunningServer, pki: Pki, partner: GrpcPartner, other_partner: GrpcPartner
) -> None:
    watcher = operator_as(server, pki, pki.watcher)
    live = watcher.WatchAllCustomers(operator_pb2.WatchAllCustomersRequest())
    assert (await live.read()).heartbeat  # subscribed: everything after this is on it
    mine = await partner.active_customer()  # 3 customer events (initiating, verifying, active)
    theirs = await other_partner.active_customer()
    first = await _changes(live, 6)
    assert {e.partner_id for e in first} == {partner.partner_id, other_partner.partner_id}
    positions = [e.position for e in first]
    assert positions == sorted(positions) and len(set(positions)) == 6
    assert all(e.HasField("seq") and e.event_id for e in first)

    # Disconnect; changes commit while nobody watches, some concurrently, then resume.
    cut = first[3].position
    live.cancel()
    operator = operator_as(server, pki, pki.compliance)
    await asyncio.gather(
        operator.SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=mine.id, reason="r")
        ),
        other_partner.customers.DeactivateCustomer(
            customers_pb2.DeactivateCustomerRequest(customer_id=theirs.id),
            metadata=other_partner.metadata,
        ),
    )
    resumed = watcher.WatchAllCustomers(operator_pb2.WatchAllCustomersRequest(after=cut))
    backlog = await _changes(resumed, 4)  # first[4:] again, then the two changes
    assert [e.event_id for e in backlog[:2]] == [e.event_id for e in first[4:]]
    later = await partner.active_customer()  # live after the backlog: the seam
    tail = await _changes(resumed, 3)
    resumed.cancel()
    received = backlog + tail
    positions = [e.position for e in received]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert {e.customer.id for e in received[2:4]} == {mine.id, theirs.id}
    assert {e.customer.id for e in tail} == {later.id}
    # No gap: exactly the customer events the outbox holds after the cut, in order.
    async with server.container.engine.connect() as connection:
        stored = (
            (
                await connection.execute(
                    sa.text(
                        "SELECT position FROM events WHERE type = 'customer.updated'"
                        " AND position > :cut ORDER BY position"
                    ),
                    {"cut": cut},
                )
            )
            .scalars()
            .all()
        )
    assert positions == list(stored)


async def test_concurrent_commits_of_many_partners_reach_the_stream_in_position_order(
    server: RunningServer, pki: Pki, partner: GrpcPartner, other_partner: GrpcPartner
) -> None:
    customers = [await p.active_customer() for p in (partner, other_partner) for _ in range(3)]
    owners = [partner] * 3 + [other_partner] * 3
    watcher = operator_as(server, pki, pki.watcher)
    live = watcher.WatchAllCustomers(operator_pb2.WatchAllCustomersRequest())
    assert (await live.read()).heartbeat

    async def flip(owner: GrpcPartner, customer_id: str) -> None:
        for _ in range(3):
            await owner.customers.DeactivateCustomer(
                customers_pb2.DeactivateCustomerRequest(customer_id=customer_id),
                metadata=owner.metadata,
            )
            await owner.customers.ActivateCustomer(
                customers_pb2.ActivateCustomerRequest(customer_id=customer_id),
                metadata=owner.metadata,
            )

    await asyncio.gather(*(flip(o, c.id) for o, c in zip(owners, customers, strict=True)))
    received = await _changes(live, 36)
    live.cancel()
    positions = [e.position for e in received]
    assert positions == sorted(positions) and len(set(positions)) == 36
    # Per partner, the global order agrees with the partner's own sequence.
    for owner in (partner, other_partner):
        seqs = [e.seq for e in received if e.partner_id == owner.partner_id]
        assert seqs == sorted(seqs) and len(seqs) == 18
    async with server.container.engine.connect() as connection:
        stored = (
            (
                await connection.execute(
                    sa.text(
                        "SELECT position FROM events WHERE type = 'customer.updated'"
                        " AND position >= :first ORDER BY position"
                    ),
                    {"first": positions[0]},
                )
            )
            .scalars()
            .all()
        )
    assert positions == list(stored)
