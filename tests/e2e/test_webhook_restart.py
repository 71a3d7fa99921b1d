"""Webhook deliveries survive `kill -9`: a server of its own (not the shared stack) is killed
in the middle of a burst of changes and started again on the same database; every event
that committed reaches the receiver at least once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

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
    auth_pb2,
    auth_pb2_grpc,
    customers_pb2,
    customers_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)
from server.config import Settings
from tests.e2e.conftest import WEBHOOK_TEST_SCHEDULE
from tests.helpers.partners import create_partner
from tests.helpers.processes import ServerProcess, running_server
from tests.helpers.receivers import Receiver, event_ids, running_receiver
from tests.helpers.wallets import caip10, new_wallet

# Attempts time out after 1 s, so a dead worker's leases (3x that) run out quickly.
ENV = {
    **WEBHOOK_TEST_SCHEDULE,
    "CUSTOMERS_WEBHOOK_TIMEOUT_SECONDS": "1",
    "CUSTOMERS_WEBHOOK_RETRY_MAX_AGE_SECONDS": "120",
}
AUTHORITY = Settings().public_authority  # the servers run with the default public URL


@contextlib.asynccontextmanager
async def signed_channel(
    server: ServerProcess, key: PrivateSigningKey
) -> AsyncIterator[grpc.aio.Channel]:
    signer = SigningClientInterceptor(key, authority=AUTHORITY)
    async with grpc.aio.insecure_channel(
        server.address,
        interceptors=[IdempotencyKeyInterceptor(), *signer.channel_interceptors()],
    ) as channel:
        yield channel


@dataclass
class Burst:
    """Customers created by concurrent workers until `stop`; `reached` fires at `target`."""

    target: int
    done: list[str] = field(default_factory=list)
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def work(self, channel: grpc.aio.Channel, token: str) -> None:
        stub = customers_pb2_grpc.CustomerServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        while not self.stop.is_set():
            wallet = new_wallet()
            try:
                made = await stub.CreateCustomer(
                    customers_pb2.CreateCustomerRequest(
                        chain_id=caip10(wallet), external_id=wallet.address
                    ),
                    metadata=metadata,
                    timeout=5,
                )
            except grpc.aio.AioRpcError:  # the server died under us: expected
                await asyncio.sleep(0.05)
                continue
            self.done.append(made.id)
            if len(self.done) >= self.target:
                self.reached.set()


@pytest.mark.timeout(120)
async def test_every_committed_event_is_delivered_after_a_kill_9(database_url: str) -> None:
    partner = await asyncio.to_thread(create_partner, database_url)
    key = generate_key()
    # A slow-ish receiver keeps deliveries in flight when the server dies.
    with running_receiver(Receiver(delay=0.3)) as receiver, contextlib.ExitStack() as servers:
        first = servers.enter_context(running_server(database_url, **ENV))
        async with grpc.aio.insecure_channel(
            first.address, interceptors=[IdempotencyKeyInterceptor()]
        ) as plain:
            auth = auth_pb2_grpc.AuthServiceStub(plain)
            token = (
                await auth.CreateToken(
                    auth_pb2.CreateTokenRequest(
                        api_key=partner.api_key, api_secret=partner.api_secret
                    )
                )
            ).token
            await auth.RegisterSigningKey(
                auth_pb2.RegisterSigningKeyRequest(public_key=public_key_b64(key)),
                metadata=(("authorization", f"Bearer {token}"),),
            )
        metadata = (("authorization", f"Bearer {token}"),)
        async with signed_channel(first, key) as channel:
            created = await webhooks_pb2_grpc.WebhookServiceStub(channel).PutWebhook(
                webhooks_pb2.PutWebhookRequest(
                    callback_url=receiver.url, types=["customer.updated"]
                ),
                metadata=metadata,
            )
            receiver.secret = created.secret
            before = Burst(target=20)
            workers = [asyncio.create_task(before.work(channel, token)) for _ in range(4)]
            await asyncio.wait_for(before.reached.wait(), 30)
            first.process.kill()  # SIGKILL: no graceful anything
            first.process.wait(10)
            before.stop.set()
            await asyncio.gather(*workers)
        committed_before_kill = event_ids(database_url, partner.partner_id)
        assert len(committed_before_kill) >= 20
        assert not receiver.has_events(committed_before_kill), "the kill caught work in flight"

        second = servers.enter_context(running_server(database_url, **ENV))
        async with signed_channel(second, key) as channel:
            after = Burst(target=5)
            worker = asyncio.create_task(after.work(channel, token))
            await asyncio.wait_for(after.reached.wait(), 30)
            after.stop.set()
            await worker

        committed = event_ids(database_url, partner.partner_id)
        started = time.monotonic()
        await asyncio.to_thread(receiver.wait_for, lambda r: r.has_events(committed), 60)
        assert set(committed) <= set(receiver.deliveries)
        assert all(a.verified for a in receiver.attempts)
        assert time.monotonic() - started < 60
