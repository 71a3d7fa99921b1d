"""Registering signing keys concurrently, on SQLite and PostgreSQL: the two-key limit holds
and the same key sent twice at once is one key, never a server error."""

from __future__ import annotations

import asyncio

import grpc

from client.signing import generate_key, public_key_b64
from customers.v1 import auth_pb2
from server.app import RunningServer
from tests.integration.conftest import GrpcPartner, make_partner

ATTEMPTS = 20
ROUNDS = 3


async def _register_all(partner: GrpcPartner, public_keys: list[str]) -> list[str]:
    """Fire every registration at once; the outcome of each as a status code name."""
    calls = [
        partner.auth.RegisterSigningKey(
            auth_pb2.RegisterSigningKeyRequest(public_key=public_key), metadata=partner.metadata
        )
        for public_key in public_keys
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    return [
        result.code().name if isinstance(result, grpc.aio.AioRpcError) else "OK"
        for result in results
    ]


async def _live_key_count(partner: GrpcPartner) -> int:
    listed = await partner.auth.ListSigningKeys(
        auth_pb2.ListSigningKeysRequest(), metadata=partner.metadata
    )
    return len(listed.keys)


async def test_concurrent_registrations_of_different_keys_stop_at_two_live_keys(
    partner: GrpcPartner,
) -> None:
    outcomes = await _register_all(
        partner, [public_key_b64(generate_key()) for _ in range(ATTEMPTS)]
    )
    assert sorted(outcomes) == ["FAILED_PRECONDITION"] * (ATTEMPTS - 1) + ["OK"]  # 409s
    assert await _live_key_count(partner) == 2


async def test_concurrent_registrations_of_the_same_key_all_succeed_as_one_key(
    server: RunningServer, channel: grpc.aio.Channel
) -> None:
    # Several rounds: without the lock, PostgreSQL failed about one round in two with a
    # primary-key violation (INTERNAL) in the losing transaction.
    for _ in range(ROUNDS):
        partner = await make_partner(server, channel)
        outcomes = await _register_all(partner, [public_key_b64(generate_key())] * ATTEMPTS)
        assert outcomes == ["OK"] * ATTEMPTS
        assert await _live_key_count(partner) == 2
