"""PostgreSQL: a secret rotated or a signing key deleted through one replica stops working on
another at once (NOTIFY partner_credentials), well inside the 2 s each replica remembers a
partner's credentials version and keys for."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import psycopg
import pytest

from client.idempotency import IdempotencyKeyInterceptor
from client.signing import PrivateSigningKey, generate_key, public_key_b64
from customers.v1 import auth_pb2, auth_pb2_grpc
from server.app import RunningServer
from server.services.auth import CACHE_TTL
from tests.helpers.databases import PG_SERVER
from tests.integration.conftest import GrpcPartner, make_partner, signed_channel

# Measured from just before the other replica first loads (and remembers) the partner's
# credentials version and keys: that memo would last until CACHE_TTL after the load, so
# without the notification the old token or key passes every call made before this.
DEADLINE = CACHE_TTL.total_seconds() / 2


@pytest.fixture
async def partner_on_a(replicas: list[RunningServer]) -> AsyncIterator[GrpcPartner]:
    a = replicas[0]
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{a.port}", interceptors=[IdempotencyKeyInterceptor()]
    ) as unsigned:
        yield await make_partner(a, unsigned)


async def _list_keys(
    auth: auth_pb2_grpc.AuthServiceStub, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    try:
        await auth.ListSigningKeys(auth_pb2.ListSigningKeysRequest(), metadata=metadata)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _rejected_before(
    deadline: float, auth: auth_pb2_grpc.AuthServiceStub, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    """Asks until the call fails or `deadline` (time.monotonic()) has passed."""
    while True:
        code = await _list_keys(auth, metadata)
        if code != grpc.StatusCode.OK or time.monotonic() >= deadline:
            return code
        await asyncio.sleep(0.02)


def _auth_on(server: RunningServer, key: PrivateSigningKey) -> auth_pb2_grpc.AuthServiceStub:
    return auth_pb2_grpc.AuthServiceStub(signed_channel(server, key))


async def test_a_secret_rotated_through_one_replica_revokes_the_token_on_the_other(
    replicas: list[RunningServer], partner_on_a: GrpcPartner
) -> None:
    partner, b = partner_on_a, replicas[1]
    assert partner.key is not None
    on_b = _auth_on(b, partner.key)
    old_token = partner.metadata
    started = time.monotonic()  # B loads (and remembers) the credentials version after this
    assert await _list_keys(on_b, old_token) == grpc.StatusCode.OK

    await partner.auth.RotateCredentials(
        auth_pb2.RotateCredentialsRequest(), metadata=partner.metadata
    )  # through A

    assert (
        await _rejected_before(started + DEADLINE, on_b, old_token)
        == grpc.StatusCode.UNAUTHENTICATED
    )


async def test_a_key_deleted_through_one_replica_stops_verifying_on_the_other(
    replicas: list[RunningServer], partner_on_a: GrpcPartner
) -> None:
    partner, b = partner_on_a, replicas[1]
    second = generate_key()
    registered = await partner.auth.RegisterSigningKey(  # through A, signed by the first key
        auth_pb2.RegisterSigningKeyRequest(public_key=public_key_b64(second)),
        metadata=partner.metadata,
    )
    on_b = _auth_on(b, second)
    started = time.monotonic()  # B loads (and remembers) both keys after this
    assert await _list_keys(on_b, partner.metadata) == grpc.StatusCode.OK

    await partner.auth.DeleteSigningKey(
        auth_pb2.DeleteSigningKeyRequest(key_id=registered.key_id), metadata=partner.metadata
    )  # through A

    assert (
        await _rejected_before(started + DEADLINE, on_b, partner.metadata)
        == grpc.StatusCode.UNAUTHENTICATED
    )


async def _kill_listener(server: RunningServer) -> None:
    """Terminates the replica's LISTEN connection and waits until it knows (it reconnects
    after a short backoff)."""
    listener = server.container.listener
    assert listener is not None and listener.connection is not None
    pid = listener.connection.info.backend_pid
    async with await psycopg.AsyncConnection.connect(
        f"{PG_SERVER}/postgres", autocommit=True
    ) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for _ in range(200):
        if listener.connection is None:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the listener did not notice its connection was killed")


async def test_a_rotation_while_the_listener_was_down_is_caught_up_on_reconnect(
    replicas: list[RunningServer], partner_on_a: GrpcPartner
) -> None:
    partner, (a, b) = partner_on_a, replicas
    assert partner.key is not None and b.container.listener is not None
    on_b = _auth_on(b, partner.key)
    old_token = partner.metadata
    started = time.monotonic()
    assert await _list_keys(on_b, old_token) == grpc.StatusCode.OK

    await _kill_listener(b)
    await a.container.auth.rotate_credentials(partner_id=uuid.UUID(partner.partner_id))
    assert b.container.listener.connection is None  # so B cannot have heard the NOTIFY

    assert (
        await _rejected_before(started + DEADLINE, on_b, old_token)
        == grpc.StatusCode.UNAUTHENTICATED
    )
