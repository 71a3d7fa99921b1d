"""Onboarding rules that need the clock or the server's settings: challenge expiry, the
screening deny list, and a KYC verdict that arrives before `verifying`."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator

import grpc
import pytest
from eth_account.signers.local import LocalAccount
from google.api import httpbody_pb2
from pydantic import SecretStr

from customers.v1 import customers_pb2, kyc_pb2_grpc, resources_pb2
from server import app
from server.adapters.kyc import signature_header
from server.app import RunningServer
from server.config import Settings
from tests.helpers.clock import SteppingClock
from tests.helpers.wallets import caip10, new_wallet, sign_challenge
from tests.integration.conftest import GrpcPartner
from tests.integration.test_grpc_customers import reason_of

Status = resources_pb2.Customer
DENIED = new_wallet()
SECRET = "integration-kyc-webhook-secret"


@pytest.fixture
async def server(database_url: str, clock: SteppingClock) -> AsyncIterator[RunningServer]:
    """The shared fixture's server, with a deny list, a known webhook secret, and tokens
    that outlive the hour the clock jumps."""
    settings = Settings(
        database_url=database_url,
        grpc_port=0,
        metrics_port=0,
        screening_deny_list=[DENIED.address.lower()],
        kyc_webhook_secret=SecretStr(SECRET),
        token_ttl_seconds=86400,
        gateway_socket_dir=tempfile.mkdtemp(prefix="cust-"),
    )
    running = await app.start(settings, clock=clock)
    yield running
    await running.stop(0)


async def create(partner: GrpcPartner, chain_id: str) -> resources_pb2.Customer:
    return await partner.customers.CreateCustomer(
        customers_pb2.CreateCustomerRequest(chain_id=chain_id, external_id=chain_id[-12:]),
        metadata=partner.metadata,
    )


async def sign(
    partner: GrpcPartner, customer: resources_pb2.Customer, wallet: LocalAccount, challenge: str
) -> None:
    await partner.customers.SignChallenge(
        customers_pb2.SignChallengeRequest(
            customer_id=customer.id,
            signature=sign_challenge(wallet, challenge),
            signer=customer.chain_id,
            challenge=challenge,
        ),
        metadata=partner.metadata,
    )


async def status_of(partner: GrpcPartner, customer: resources_pb2.Customer) -> int:
    found = await partner.customers.GetCustomer(
        customers_pb2.GetCustomerRequest(customer_id=customer.id), metadata=partner.metadata
    )
    return int(found.status)


async def get_challenge(partner: GrpcPartner, customer: resources_pb2.Customer) -> str:
    answer = await partner.customers.GetChallenge(
        customers_pb2.GetChallengeRequest(customer_id=customer.id), metadata=partner.metadata
    )
    return str(answer.challenge)


async def test_expired_challenge_answers_challenge_expired_and_a_new_one_is_issued(
    partner: GrpcPartner, clock: SteppingClock
) -> None:
    wallet = new_wallet()
    customer = await create(partner, caip10(wallet))
    clock.advance(hours=1, seconds=1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await sign(partner, customer, wallet, customer.challenge)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(raised.value) == "CHALLENGE_EXPIRED"
    fresh = await get_challenge(partner, customer)
    assert fresh != customer.challenge
    assert await status_of(partner, customer) == Status.initiating
    await sign(partner, customer, wallet, fresh)
    assert await status_of(partner, customer) == Status.verifying


async def test_get_challenge_after_expiry_returns_a_fresh_unexpired_one(
    partner: GrpcPartner, clock: SteppingClock
) -> None:
    wallet = new_wallet()
    customer = await create(partner, caip10(wallet))
    assert await get_challenge(partner, customer) == customer.challenge  # still current
    clock.advance(hours=1, seconds=1)
    answer = await partner.customers.GetChallenge(
        customers_pb2.GetChallengeRequest(customer_id=customer.id), metadata=partner.metadata
    )
    assert answer.challenge != customer.challenge
    assert answer.expires_at.ToDatetime().timestamp() > clock.now().timestamp()
    assert await get_challenge(partner, customer) == answer.challenge  # stable until expiry
    await sign(partner, customer, wallet, answer.challenge)
    assert await status_of(partner, customer) == Status.verifying


async def test_deny_listed_wallet_is_rejected_at_screening_for_good(
    partner: GrpcPartner, channel: grpc.aio.Channel, clock: SteppingClock
) -> None:
    customer = await create(partner, caip10(DENIED))
    await sign(partner, customer, DENIED, customer.challenge)
    assert await status_of(partner, customer) == Status.rejected
    # A KYC approval cannot rescue it, and nothing re-opens it.
    await send_callback(channel, clock, customer, "approved")
    assert await status_of(partner, customer) == Status.rejected
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await partner.customers.ActivateCustomer(
            customers_pb2.ActivateCustomerRequest(customer_id=customer.id),
            metadata=partner.metadata,
        )
    assert reason_of(raised.value) == "INVALID_STATE_TRANSITION"


async def send_callback(
    channel: grpc.aio.Channel,
    clock: SteppingClock,
    customer: resources_pb2.Customer,
    verdict: str,
) -> None:
    """The KYC partner's signed callback, over gRPC: the HttpBody is what Envoy passes on."""
    session_id = customer.verification_url.rsplit("/", 1)[1]
    timestamp = int(clock.now().timestamp())
    body = json.dumps(
        {"sessionId": session_id, "verdict": verdict, "eventId": "evt-1", "timestamp": timestamp}
    ).encode()
    await kyc_pb2_grpc.KycCallbackServiceStub(channel).ReceiveCallback(
        httpbody_pb2.HttpBody(content_type="application/json", data=body),
        metadata=(("x-kyc-signature", signature_header(SECRET.encode(), timestamp, body)),),
    )


async def test_kyc_verdict_arriving_before_verifying_is_applied_on_reaching_it(
    partner: GrpcPartner, channel: grpc.aio.Channel, clock: SteppingClock
) -> None:
    wallet = new_wallet()
    customer = await create(partner, caip10(wallet))
    await send_callback(channel, clock, customer, "approved")
    await send_callback(channel, clock, customer, "approved")  # a resend changes nothing
    assert await status_of(partner, customer) == Status.initiating
    await sign(partner, customer, wallet, customer.challenge)
    assert await status_of(partner, customer) == Status.active


async def test_forged_callback_is_unauthenticated_and_changes_nothing(
    partner: GrpcPartner, channel: grpc.aio.Channel, clock: SteppingClock
) -> None:
    wallet = new_wallet()
    customer = await create(partner, caip10(wallet))
    session_id = customer.verification_url.rsplit("/", 1)[1]
    body = json.dumps({"sessionId": session_id, "verdict": "approved", "eventId": "e"}).encode()
    timestamp = int(clock.now().timestamp())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await kyc_pb2_grpc.KycCallbackServiceStub(channel).ReceiveCallback(
            httpbody_pb2.HttpBody(content_type="application/json", data=body),
            metadata=(("x-kyc-signature", signature_header(b"guessed-secret", timestamp, body)),),
        )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(raised.value) == "INVALID_CALLBACK_SIGNATURE"
    await sign(partner, customer, wallet, customer.challenge)
    assert await status_of(partner, customer) == Status.verifying
