"""One httpcore connection pool per receiver, behind the one pool httpx's transport talks to.

Why: httpcore's pool walks every connection it holds twice per request (on the way in and
when the answer is closed), asking each whether it expired (a `select` on its socket) and,
for each idle one, counting all the others: with 16 keep-alive connections to 4 receivers
that walk was a seventh of a delivery's CPU. Split per receiver, each request walks only its
own receiver's few connections (the dispatcher keeps at most PER_RECEIVER_LIMIT of them
busy).

A receiver that gets no more deliveries would keep its idle connections open forever (a pool
only tidies itself when used), so every `keepalive_expiry` seconds the pools whose
connections are all closed, or idle past their keep-alive, are closed and dropped.
"""

from __future__ import annotations

import ssl
import time

import httpcore


class ReceiverPools(httpcore.AsyncConnectionPool):
    """An AsyncConnectionPool (so httpx's transport takes it as its pool) that hands each
    request to the pool of its origin (scheme, host, port)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int | None,
        max_keepalive_connections: int | None,
        keepalive_expiry: float | None,
        network_backend: httpcore.AsyncNetworkBackend,
    ) -> None:
        super().__init__(ssl_context=ssl_context, network_backend=network_backend)
        self._ssl = ssl_context
        self._max = max_connections
        self._keep = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._backend = network_backend
        self._pools: dict[tuple[bytes, bytes, int | None], httpcore.AsyncConnectionPool] = {}
        self._swept = time.monotonic()

    @property
    def connections(self) -> list[httpcore.AsyncConnectionInterface]:
        return [c for pool in self._pools.values() for c in pool.connections]

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        await self._sweep()
        url = request.url
        origin = (url.scheme, url.host, url.port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl,
                max_connections=self._max,
                max_keepalive_connections=self._keep,
                keepalive_expiry=self._expiry,
                network_backend=self._backend,
            )
        return await pool.handle_async_request(request)

    async def _sweep(self) -> None:
        now = time.monotonic()
        if self._expiry is None or now - self._swept < self._expiry:
            return
        self._swept = now
        unused = [
            origin
            for origin, pool in self._pools.items()
            if all(c.is_closed() or (c.is_idle() and c.has_expired()) for c in pool.connections)
        ]
        for origin in unused:
            # Out of the map before the await: a request arriving meanwhile gets a new pool.
            await self._pools.pop(origin).aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
        await super().aclose()
