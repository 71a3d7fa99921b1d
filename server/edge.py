"""The Envoy config for this deployment: ports and backends from the caller, the gateway
key (which lets Envoy call the ext_authz verifier) from the database's shared secret."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Sequence

from gateway.config import render
from server.bootstrap import gateway_key, server_secret
from server.store.engine import make_engine
from server.transport.services import SERVICE_NAMES

DESCRIPTOR = pathlib.Path(__file__).resolve().parent.parent / "gen" / "customers.pb"


async def render_gateway(
    database_url: str,
    *,
    http_port: int,
    admin_port: int,
    backends: Sequence[tuple[str, int]],
    access_log: bool = True,
) -> str:
    engine = make_engine(database_url)
    try:
        secret = await server_secret(engine, "attestation")
    finally:
        await engine.dispose()
    return render(
        http_port=http_port,
        admin_port=admin_port,
        backends=backends,
        descriptor_path=str(DESCRIPTOR),
        services=SERVICE_NAMES,
        gateway_key=gateway_key(secret),
        access_log=access_log,
    )


def render_gateway_sync(
    database_url: str,
    *,
    http_port: int,
    admin_port: int,
    backends: Sequence[tuple[str, int]],
    access_log: bool = True,
) -> str:
    return asyncio.run(
        render_gateway(
            database_url,
            http_port=http_port,
            admin_port=admin_port,
            backends=backends,
            access_log=access_log,
        )
    )
