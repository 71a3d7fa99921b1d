"""The dispatcher's connection pools: one per receiver, reused, and let go once idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpcore
import httpx
import pytest

from server.events.receiver_pools import ReceiverPools

ANSWER = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def receivers() -> AsyncIterator[list[str]]:
    servers = [await asyncio.start_server(_answer, "127.0.0.1", 0) for _ in range(2)]
    yield [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/hook" for s in servers]
    for server in servers:
        server.close()


def _client(expiry: float) -> tuple[httpx.AsyncClient, ReceiverPools]:
    transport = httpx.AsyncHTTPTransport()
    pools = ReceiverPools(
        ssl_context=httpx.create_ssl_context(),
        max_connections=8,
        max_keepalive_connections=4,
        keepalive_expiry=expiry,
        network_backend=httpcore.AnyIOBackend(),
    )
    transport._pool = pools
    return httpx.AsyncClient(transport=transport), pools


async def test_each_receiver_gets_its_own_pool_and_connections_are_kept_alive(
    receivers: list[str],
) -> None:
    client, pools = _client(expiry=60)
    async with client:
        for _ in range(3):
            answers = await asyncio.gather(
                *(client.post(url, content=b"{}") for url in receivers for _ in range(2))
            )
            assert [a.status_code for a in answers] == [204] * 4
        assert len(pools._pools) == 2
        assert len(pools.connections) == 4  # two per receiver, reused on every round
    assert pools.connections == []


async def test_a_receiver_no_longer_called_has_its_idle_connections_closed(
    receivers: list[str],
) -> None:
    client, pools = _client(expiry=0.05)
    async with client:
        first, second = receivers
        await client.post(first, content=b"{}")
        await asyncio.sleep(0.1)
        await client.post(second, content=b"{}")  # sweeps the first receiver's idle pool
        assert len(pools._pools) == 1
        assert len(pools.connections) == 1
