"""A customer change made through one server process, watched through another."""

from __future__ import annotations

import asyncio

import grpc

from client.idempotency import IdempotencyKeyInterceptor
from client.signing import PrivateSigningKey, SigningClientInterceptor
from customers.v1 import customers_pb2, customers_pb2_grpc
from tests.helpers.wallets import caip10, new_wallet


async def change_streams_across(
    writer: str, watcher: str, *, key: PrivateSigningKey, token: str, authority: str
) -> tuple[str, str]:
    """Watches from the start (`after=0`) on `watcher`, creates a customer on `writer` (both
    gRPC targets); returns (created id, first streamed id)."""
    metadata = (("authorization", f"Bearer {token}"),)
    signer = SigningClientInterceptor(key, authority=authority)
    interceptors = [IdempotencyKeyInterceptor(), *signer.channel_interceptors()]
    async with (
        grpc.aio.insecure_channel(writer, interceptors=interceptors) as on_writer,
        grpc.aio.insecure_channel(watcher, interceptors=interceptors) as on_watcher,
    ):
        stream = customers_pb2_grpc.CustomerServiceStub(on_watcher).WatchCustomers(
            customers_pb2.WatchCustomersRequest(after=0), metadata=metadata
        )
        created = await customers_pb2_grpc.CustomerServiceStub(on_writer).CreateCustomer(
            customers_pb2.CreateCustomerRequest(
                chain_id=caip10(new_wallet()), external_id="across-processes"
            ),
            metadata=metadata,
        )

        async def first_change() -> str:
            async for message in stream:
                if not message.heartbeat:
                    return str(message.customer.id)
            raise AssertionError("stream ended")

        streamed = await asyncio.wait_for(first_change(), 15)
        stream.cancel()
        return str(created.id), streamed
