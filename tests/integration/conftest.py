"""The production server started in-process (app.start, port 0) with a steppable clock,
spoken to over a real gRPC channel with the generated stubs."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from client.idempotency import IdempotencyKeyInterceptor
from client.signing import (
    PrivateSigningKey,
    SigningClientInterceptor,
    generate_key,
    public_key_b64,
)
from customers.v1 import (
    accounts_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    customers_pb2,
    customers_pb2_grpc,
    events_pb2_grpc,
    resources_pb2,
    simulator_pb2,
    simulator_pb2_grpc,
)
from server import app
from server.app import RunningServer
from server.config import Settings
from tests.helpers.clock import SteppingClock
from tests.helpers.databases import postgres_database
from tests.helpers.wallets import caip10, new_wallet, sign_challenge


@dataclass
class GrpcPartner:
    """One partner's view of the API: stubs plus its bearer-token metadata."""

    partner_id: str
    metadata: tuple[tuple[str, str], ...]
    customers: customers_pb2_grpc.CustomerServiceStub
    accounts: accounts_pb2_grpc.AccountServiceStub
    cards: accounts_pb2_grpc.CardServiceStub
    simulator: simulator_pb2_grpc.SimulatorServiceStub
    auth: auth_pb2_grpc.AuthServiceStub
    events: events_pb2_grpc.EventServiceStub
    api_key: str
    api_secret: str
    key: PrivateSigningKey | None = None

    async def reauthenticate(self) -> None:
        """A fresh token, e.g. after the test clock moved past the old one's expiry."""
        token = await self.auth.CreateToken(
            auth_pb2.CreateTokenRequest(api_key=self.api_key, api_secret=self.api_secret)
        )
        self.metadata = (("authorization", f"Bearer {token.token}"),)

    async def active_customer(self, external_id: str | None = None) -> resources_pb2.Customer:
        """Onboards a fresh wallet all the way: create, sign, simulator verify."""
        wallet = new_wallet()
        created = await self.customers.CreateCustomer(
            customers_pb2.CreateCustomerRequest(
                chain_id=caip10(wallet), external_id=external_id or wallet.address
            ),
            metadata=self.metadata,
        )
        await self.customers.SignChallenge(
            customers_pb2.SignChallengeRequest(
                customer_id=created.id,
                signature=sign_challenge(wallet, created.challenge),
                signer=created.chain_id,
                challenge=created.challenge,
            ),
            metadata=self.metadata,
        )
        await self.simulator.VerifyCustomer(
            simulator_pb2.SimulateKycRequest(customer_id=created.id), metadata=self.metadata
        )
        customer: resources_pb2.Customer = await self.customers.GetCustomer(
            customers_pb2.GetCustomerRequest(customer_id=created.id), metadata=self.metadata
        )
        assert customer.status == resources_pb2.Customer.active
        return customer


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Settings a test module's server runs with beyond the defaults (override it there)."""
    return {}


@pytest.fixture
async def server(
    database_url: str, clock: SteppingClock, server_settings: dict[str, Any]
) -> AsyncIterator[RunningServer]:
    settings = Settings(
        database_url=database_url,
        grpc_port=0,
        metrics_port=0,
        # Short (Unix socket paths are limited to 107 bytes) and the test's own.
        gateway_socket_dir=tempfile.mkdtemp(prefix="cust-"),
        **server_settings,
    )
    running = await app.start(settings, clock=clock)
    yield running
    await running.stop(0)


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    """An unsigned channel: public methods, and the first key's registration."""
    address = f"127.0.0.1:{server.port}"
    interceptors = [IdempotencyKeyInterceptor()]
    async with grpc.aio.insecure_channel(address, interceptors=interceptors) as opened:
        yield opened


async def make_partner(
    server: RunningServer,
    channel: grpc.aio.Channel,
    credentials: grpc.ChannelCredentials | None = None,
) -> GrpcPartner:
    """A partner with a registered P-384 key whose every call is signed, on its own channel
    (the signing interceptor holds the key); `credentials`: over TLS (the mTLS port)."""
    made = await server.container.auth.create_partner("test")
    key = generate_key()
    token = await auth_pb2_grpc.AuthServiceStub(channel).CreateToken(
        auth_pb2.CreateTokenRequest(api_key=str(made.api_key), api_secret=made.api_secret)
    )
    await auth_pb2_grpc.AuthServiceStub(channel).RegisterSigningKey(
        auth_pb2.RegisterSigningKeyRequest(public_key=public_key_b64(key)),
        metadata=(("authorization", f"Bearer {token.token}"),),
    )
    channel = signed_channel(server, key, credentials)
    found = GrpcPartner(
        partner_id=str(made.partner_id),
        metadata=(),
        customers=customers_pb2_grpc.CustomerServiceStub(channel),
        accounts=accounts_pb2_grpc.AccountServiceStub(channel),
        cards=accounts_pb2_grpc.CardServiceStub(channel),
        simulator=simulator_pb2_grpc.SimulatorServiceStub(channel),
        auth=auth_pb2_grpc.AuthServiceStub(channel),
        events=events_pb2_grpc.EventServiceStub(channel),
        api_key=str(made.api_key),
        api_secret=made.api_secret,
        key=key,
    )
    await found.reauthenticate()
    return found


_open_channels: list[grpc.aio.Channel] = []


def signed_channel(
    server: RunningServer,
    key: PrivateSigningKey,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """A channel to `server` whose calls carry an Idempotency-Key and are signed with `key`
    by the server's (steppable) time; over TLS with `credentials`."""
    clock = server.container.clock
    signer = SigningClientInterceptor(
        key,
        authority=server.container.settings.public_authority,
        clock=lambda: clock.now().timestamp(),
    )
    interceptors = [IdempotencyKeyInterceptor(), *signer.channel_interceptors()]
    address = f"127.0.0.1:{server.port}"
    channel = (
        grpc.aio.insecure_channel(address, interceptors=interceptors)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials, interceptors=interceptors)
    )
    _open_channels.append(channel)
    return channel


@pytest.fixture(autouse=True)
async def _close_partner_channels() -> AsyncIterator[None]:
    yield
    while _open_channels:
        await _open_channels.pop().close()


@pytest.fixture
async def partner(server: RunningServer, channel: grpc.aio.Channel) -> GrpcPartner:
    return await make_partner(server, channel)


@pytest.fixture
async def other_partner(server: RunningServer, channel: grpc.aio.Channel) -> GrpcPartner:
    return await make_partner(server, channel)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
async def replicas(pg_url: str) -> AsyncIterator[list[RunningServer]]:
    """Two servers on one PostgreSQL database, as two replicas would run (each with its own
    gateway socket directory)."""

    def settings() -> Settings:
        return Settings(
            database_url=pg_url,
            grpc_port=0,
            metrics_port=0,
            gateway_socket_dir=tempfile.mkdtemp(prefix="cust-"),
        )

    running = [await app.start(settings()), await app.start(settings())]
    yield running
    for server in running:
        await server.stop(0)
