"""The webhook dispatcher's way out to the network, guarded against server-side request
forgery: every attempt resolves the callback host itself and, outside development mode,
refuses it unless every address is public (`domain/webhooks.address_allowed`); the
connection then goes to one of exactly those checked addresses, so a DNS answer that
changes between check and connect (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Awaitable, Callable

import httpcore
import httpx

from server.domain.webhooks import address_allowed
from server.events.receiver_pools import ReceiverPools

Resolve = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for the host, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressNotAllowed(Exception):
    """The callback host resolved to an address a production server must not call."""


class HostNotResolved(Exception):
    """The callback host has no address (NXDOMAIN, `*.invalid`, a resolver failure): an
    ordinary failed attempt, retried on the schedule like a refused connection."""


def _allowed(address: str) -> bool:
    try:
        return address_allowed(ipaddress.ip_address(address))
    except ValueError:
        return False


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's connect step with our own resolution: resolve, check every address (in
    production), connect to a checked address. TLS still verifies the certificate against
    the URL's host name (httpcore passes it as server_hostname), so HTTPS stays HTTPS."""

    def __init__(self, *, resolve: Resolve, production: bool) -> None:
        self._resolve = resolve
        self._production = production
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:  # socket.gaierror; httpx would let it escape unmapped
            raise HostNotResolved(host) from exc
        if not addresses:
            raise HostNotResolved(host)
        if self._production and not all(_allowed(a) for a in addresses):
            raise AddressNotAllowed(host)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed("unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over connection pools (one per receiver: events/receiver_pools.py)
    that connect through the guarded backend. (httpx 0.28 takes no network backend, so the
    pool it built is swapped for ours; httpx is pinned.) No proxies from the environment:
    they would bypass the address checks."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = ReceiverPools(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
