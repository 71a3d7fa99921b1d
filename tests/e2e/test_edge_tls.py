"""The production transport through the real Envoy (SPEC sections 13 and 14): HTTPS on the
REST listener (HTTP/1.1 and HTTP/2 by ALPN), and the public gRPC port as Envoy's TLS
listener where a client certificate is optional: partners call without one (token +
signature), internal services with theirs, whose identity reaches the worker over Envoy's
own mTLS hop. Bad certificates fail the handshake; a forwarded-certificate header written
by a client grants nothing."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from client.idempotency import IdempotencyKeyInterceptor
from client.signing import SigningClientInterceptor
from customers.v1 import (
    customers_pb2,
    customers_pb2_grpc,
    operator_pb2,
    operator_pb2_grpc,
    resources_pb2,
    simulator_pb2,
    simulator_pb2_grpc,
)
from tests.e2e.conftest import COMPLIANCE, TlsStack, error_reason
from tests.helpers.certificates import Issued
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet, sign_challenge

XFCC = "x-forwarded-client-cert"


@pytest.fixture
def https(tls_stack: TlsStack) -> Iterator[httpx.Client]:
    with tls_stack.http() as client:
        yield client


@pytest.fixture
def partner(tls_stack: TlsStack, https: httpx.Client) -> RestPartner:
    return RestPartner(https, tls_stack.new_partner())


def reason_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, error
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    raise AssertionError(f"no ErrorInfo in {error}")


def operator_stub(
    tls_stack: TlsStack, client: Issued | None
) -> tuple[grpc.Channel, operator_pb2_grpc.OperatorServiceStub]:
    channel = grpc.secure_channel(tls_stack.grpc_address, tls_stack.credentials(client))
    return channel, operator_pb2_grpc.OperatorServiceStub(channel)


def audit_count(database_url: str) -> int:
    engine = sa.create_engine(database_url.replace("+aiosqlite", ""))
    try:
        with engine.connect() as connection:
            count = connection.execute(sa.text("SELECT COUNT(*) FROM operator_actions"))
            return int(count.scalar_one())
    finally:
        engine.dispose()


# -- HTTPS on the REST listener -----------------------------------------------------------


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])
def test_rest_over_https_runs_a_signed_create_over_http1_and_http2(
    tls_stack: TlsStack, http2: bool
) -> None:
    with tls_stack.http(http2=http2) as client:
        partner = RestPartner(client, tls_stack.new_partner())
        wallet = new_wallet()
        created = partner.call(
            "POST", "/customers", json={"chainId": caip10(wallet), "externalId": wallet.address}
        )
        assert created.status_code == 201, created.text
        assert created.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        body = created.json()
        # The public URL is HTTPS: KYC link and SIWE domain and URI follow it.
        assert body["verificationUrl"].startswith(tls_stack.base_url + "/kyc/")
        message = base64.b64decode(body["challenge"]).decode()
        authority = urlsplit(tls_stack.base_url).netloc
        assert message.startswith(f"{authority} wants you to sign in with your Ethereum account")
        assert f"\nURI: {tls_stack.base_url}\n" in message
        shown = partner.call("GET", f"/customers/{body['id']}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "initiating"
        assert shown.json()["externalId"] == wallet.address


def test_the_kyc_link_is_https_and_the_sandbox_partners_callback_arrives_over_it(
    tls_stack: TlsStack, https: httpx.Client, partner: RestPartner
) -> None:
    wallet = new_wallet()
    created = partner.call(
        "POST", "/customers", json={"chainId": caip10(wallet), "externalId": wallet.address}
    )
    assert created.status_code == 201, created.text
    customer = created.json()
    page = https.get(customer["verificationUrl"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # The portal's button: the sandbox partner then posts its signed callback to
    # CUSTOMERS_PUBLIC_URL (HTTPS, through Envoy) before it answers.
    decided = https.post(f"{customer['verificationUrl']}/decision", data={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    signed = partner.call(
        "POST",
        f"/customers/{customer['id']}/challenge/sign",
        json={
            "signature": sign_challenge(wallet, customer["challenge"]),
            "signer": customer["chainId"],
            "challenge": customer["challenge"],
        },
    )
    assert signed.status_code == 204, signed.text
    assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "active"


def test_plain_http_to_the_https_port_is_refused(tls_stack: TlsStack) -> None:
    plain = "http://" + tls_stack.base_url.removeprefix("https://")
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.TransportError):
        client.get(plain + "/openapi.json")


def test_a_client_certificate_header_sent_over_rest_grants_nothing(
    tls_stack: TlsStack, partner: RestPartner
) -> None:
    customer = partner.active_customer()
    before = audit_count(tls_stack.database_url)
    forged = {XFCC: f"By=spiffe://customers.internal/gateway;Hash=00;URI={COMPLIANCE}"}
    refused = partner.call(
        "POST",
        "/customers.v1.OperatorService/SuspendCustomer",
        json={"customerId": customer["id"], "reason": "forged"},
        headers=forged,
    )
    assert refused.status_code == 404 and error_reason(refused) == "ROUTE_NOT_FOUND"
    # An ordinary call with the header is the partner's own call, nothing more.
    shown = partner.call("GET", f"/customers/{customer['id']}", headers=forged)
    assert shown.status_code == 200 and shown.json()["status"] == "active"
    assert audit_count(tls_stack.database_url) == before


# -- the public gRPC port: Envoy's TLS, client certificates optional ------------------------


async def test_a_partner_without_a_client_certificate_runs_a_signed_native_grpc_flow(
    tls_stack: TlsStack, partner: RestPartner
) -> None:
    authority = urlsplit(tls_stack.base_url).netloc
    signer = SigningClientInterceptor(partner.key, authority=authority)
    metadata = (("authorization", f"Bearer {partner.token}"),)
    interceptors = [IdempotencyKeyInterceptor(), *signer.channel_interceptors()]
    no_certificate = tls_stack.credentials(None)
    wallet = new_wallet()
    async with grpc.aio.secure_channel(
        tls_stack.grpc_address, no_certificate, interceptors=interceptors
    ) as channel:
        customers = customers_pb2_grpc.CustomerServiceStub(channel)
        created = await customers.CreateCustomer(
            customers_pb2.CreateCustomerRequest(
                chain_id=caip10(wallet), external_id=wallet.address
            ),
            metadata=metadata,
            timeout=10,
        )
        await customers.SignChallenge(
            customers_pb2.SignChallengeRequest(
                customer_id=created.id,
                signature=sign_challenge(wallet, created.challenge),
                signer=created.chain_id,
                challenge=created.challenge,
            ),
            metadata=metadata,
            timeout=10,
        )
        await simulator_pb2_grpc.SimulatorServiceStub(channel).VerifyCustomer(
            simulator_pb2.SimulateKycRequest(customer_id=created.id), metadata=metadata
        )
        found = await customers.GetCustomer(
            customers_pb2.GetCustomerRequest(customer_id=created.id), metadata=metadata
        )
    assert found.status == resources_pb2.Customer.active
    # The partner's REST view is the same customer.
    assert partner.call("GET", f"/customers/{created.id}").json()["status"] == "active"
    # Without the signature the token alone is refused, certificate or not.
    async with grpc.aio.secure_channel(tls_stack.grpc_address, no_certificate) as unsigned:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customers_pb2_grpc.CustomerServiceStub(unsigned).GetCustomer(
                customers_pb2.GetCustomerRequest(customer_id=created.id),
                metadata=metadata,
                timeout=10,
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_internal_principal_calls_operator_methods_only_within_its_role(
    tls_stack: TlsStack, partner: RestPartner
) -> None:
    customer = partner.active_customer()
    request = operator_pb2.OperatorActionRequest(customer_id=customer["id"], reason="AML 7")
    before = audit_count(tls_stack.database_url)
    reader_channel, reader = operator_stub(tls_stack, tls_stack.support)
    with reader_channel:
        found = reader.GetCustomer(
            operator_pb2.OperatorGetCustomerRequest(customer_id=customer["id"]), timeout=10
        )
        assert found.customer.id == customer["id"] and found.partner_id
        with pytest.raises(grpc.RpcError) as denied:
            reader.SuspendCustomer(request, timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(denied.value) == "PRINCIPAL_NOT_ALLOWED"
    assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "active"
    assert audit_count(tls_stack.database_url) == before

    operator_channel, operator = operator_stub(tls_stack, tls_stack.compliance)
    with operator_channel:
        suspended = operator.SuspendCustomer(request, timeout=10)
        assert suspended.customer.status == resources_pb2.Customer.inactive
        assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "inactive"
        operator.ReinstateCustomer(request, timeout=10)
    assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "active"
    assert audit_count(tls_stack.database_url) == before + 2


@pytest.mark.parametrize("who", ["foreign", "expired"])
def test_a_wrong_ca_or_expired_client_certificate_is_refused_at_the_handshake(
    tls_stack: TlsStack, who: str
) -> None:
    client = {"foreign": tls_stack.foreign, "expired": tls_stack.expired}[who]
    channel, operator = operator_stub(tls_stack, client)
    with channel:
        # Even the public health check: nothing gets past the handshake.
        with pytest.raises(grpc.RpcError) as refused:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as also:
            operator.GetCustomer(
                operator_pb2.OperatorGetCustomerRequest(customer_id="x"), timeout=5
            )
        assert also.value.code() == grpc.StatusCode.UNAVAILABLE
    # Without any certificate the same port answers.
    channel, _ = operator_stub(tls_stack, None)
    with channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("who", ["none", "partner", "support"])
def test_a_forged_forwarded_client_certificate_over_grpc_grants_nothing(
    tls_stack: TlsStack, partner: RestPartner, who: str
) -> None:
    customer = partner.active_customer()
    before = audit_count(tls_stack.database_url)
    client = {"none": None, "partner": tls_stack.partner_cert, "support": tls_stack.support}[who]
    forged = ((XFCC, f"By=spiffe://customers.internal/gateway;Hash=00;URI={COMPLIANCE}"),)
    channel, operator = operator_stub(tls_stack, client)
    with channel, pytest.raises(grpc.RpcError) as refused:
        operator.SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer["id"], reason="forged"),
            metadata=forged,
            timeout=10,
        )
    expected = {
        "none": (grpc.StatusCode.UNAUTHENTICATED, "CLIENT_CERTIFICATE_REQUIRED"),
        "partner": (grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED"),
        "support": (grpc.StatusCode.PERMISSION_DENIED, "PRINCIPAL_NOT_ALLOWED"),
    }[who]
    assert (refused.value.code(), reason_of(refused.value)) == expected
    assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "active"
    assert audit_count(tls_stack.database_url) == before


def test_the_workers_internal_port_refuses_callers_without_a_client_certificate(
    tls_stack: TlsStack,
) -> None:
    channel = grpc.secure_channel(tls_stack.internal_address, tls_stack.credentials(None))
    with channel, pytest.raises(grpc.RpcError) as refused:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_partners_stream_through_the_public_grpc_port_sees_a_change_made_over_https(
    tls_stack: TlsStack, partner: RestPartner
) -> None:
    authority = urlsplit(tls_stack.base_url).netloc
    signer = SigningClientInterceptor(partner.key, authority=authority)
    metadata = (("authorization", f"Bearer {partner.token}"),)
    async with grpc.aio.secure_channel(
        tls_stack.grpc_address,
        tls_stack.credentials(None),
        interceptors=signer.channel_interceptors(),
    ) as channel:
        stream = customers_pb2_grpc.CustomerServiceStub(channel).WatchCustomers(
            customers_pb2.WatchCustomersRequest(after=0), metadata=metadata
        )
        created = partner.create_customer()
        assert created.status_code == 201, created.text

        async def first_change() -> str:
            async for message in stream:
                if not message.heartbeat:
                    return str(message.customer.id)
            raise AssertionError("stream ended")

        streamed = await asyncio.wait_for(first_change(), 15)
        stream.cancel()
    assert streamed == created.json()["id"]


def test_gateway_headers_sent_to_the_public_grpc_port_vouch_for_nothing(
    tls_stack: TlsStack, partner: RestPartner
) -> None:
    """A client claiming to be the REST gateway (x-gateway-*) on the gRPC port: Envoy drops
    the headers, the worker would ignore them on TCP, and the unsigned call is refused."""
    customer = partner.active_customer()
    claimed = (
        ("authorization", f"Bearer {partner.token}"),
        ("x-gateway-method", "GET"),
        ("x-gateway-authority", urlsplit(tls_stack.base_url).netloc),
        ("x-gateway-target", f"/customers/{customer['id']}"),
    )
    channel = grpc.secure_channel(tls_stack.grpc_address, tls_stack.credentials(None))
    with channel, pytest.raises(grpc.RpcError) as refused:
        customers_pb2_grpc.CustomerServiceStub(channel).GetCustomer(
            customers_pb2.GetCustomerRequest(customer_id=customer["id"]),
            metadata=claimed,
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
