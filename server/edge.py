"""The Envoy config for this deployment: its ports, and the workers' gateway sockets as its
backends. Nothing secret goes into it (Envoy's admin `/config_dump` shows every value):
what makes a call the gateway's is the socket it arrives on."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from gateway.config import render
from server.transport.services import SERVICE_NAMES

DESCRIPTOR = pathlib.Path(__file__).resolve().parent.parent / "gen" / "customers.pb"


def render_gateway(
    *,
    http_port: int,
    admin_port: int,
    backends: Sequence[str],
    access_log: bool = True,
) -> str:
    """`backends`: the workers' gateway socket paths (Settings.gateway_sockets())."""
    return render(
        http_port=http_port,
        admin_port=admin_port,
        backends=backends,
        descriptor_path=str(DESCRIPTOR),
        services=SERVICE_NAMES,
        access_log=access_log,
    )
