"""PostgreSQL: changes committed by another replica reach this replica's streams, also
after the LISTEN connection was lost."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import psycopg

from client.idempotency import IdempotencyKeyInterceptor
from customers.v1 import customers_pb2, customers_pb2_grpc
from server.app import RunningServer
from server.bootstrap import build
from server.config import Settings
from tests.helpers.databases import PG_SERVER
from tests.helpers.wallets import caip10, new_wallet
from tests.integration.conftest import make_partner, signed_channel
from tests.integration.test_customer_stream import take


async def test_a_change_through_one_replica_streams_from_the_other(
    replicas: list[RunningServer],
) -> None:
    one, other = replicas
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{one.port}", interceptors=[IdempotencyKeyInterceptor()]
    ) as unsigned:
        partner = await make_partner(one, unsigned)
        stream = partner.customers.WatchCustomers(
            customers_pb2.WatchCustomersRequest(after=0), metadata=partner.metadata
        )
        assert partner.key is not None
        through_other = customers_pb2_grpc.CustomerServiceStub(signed_channel(other, partner.key))
        created = await through_other.CreateCustomer(
            customers_pb2.CreateCustomerRequest(chain_id=caip10(new_wallet()), external_id="x"),
            metadata=partner.metadata,
        )
        events = await take(stream, 1)
        stream.cancel()
        assert events[0].customer.id == created.id


async def _terminate_listeners(database: str) -> int:
    async with await psycopg.AsyncConnection.connect(
        f"{PG_SERVER}/postgres", autocommit=True
    ) as admin:
        cursor = await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (database,),
        )
        return len(await cursor.fetchall())


async def test_changes_from_elsewhere_arrive_even_after_the_listener_was_killed(
    pg_url: str, replicas: list[RunningServer]
) -> None:
    server = replicas[0]
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{server.port}", interceptors=[IdempotencyKeyInterceptor()]
    ) as channel:
        partner = await make_partner(server, channel)
        stream = partner.customers.WatchCustomers(
            customers_pb2.WatchCustomersRequest(after=0), metadata=partner.metadata
        )
        await asyncio.sleep(0.3)
        assert await _terminate_listeners(pg_url.rsplit("/", 1)[1]) >= 1
        # Another process's commit (its own hub is not ours): only NOTIFY can tell us, and
        # it may well be sent while our listener is reconnecting.
        elsewhere = await build(Settings(database_url=pg_url, metrics_port=0))
        try:
            made = await elsewhere.customers.create(
                partner_id=uuid.UUID(partner.partner_id),
                chain_id=caip10(new_wallet()),
                external_id="from-elsewhere",
            )
        finally:
            await elsewhere.close()
        events = await take(stream, 1)
        stream.cancel()
        assert events[0].customer.id == str(made.customer.id)
