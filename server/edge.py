"""The Envoy config for this deployment: its ports, and the workers' gateway sockets as its
backends. Nothing secret goes into it (Envoy's admin `/config_dump` shows every value):
what makes a call the gateway's is the socket it arrives on."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from gateway.config import REQUEST_TIMEOUT_SECONDS, render
from server.transport.policy import POLICY
from server.transport.services import SERVICE_NAMES

DESCRIPTOR = pathlib.Path(__file__).resolve().parent.parent / "gen" / "customers.pb"


def render_gateway(
    *,
    http_port: int,
    admin_port: int,
    backends: Sequence[str],
    access_log: bool = True,
    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
) -> str:
    """`backends`: the workers' gateway socket paths (Settings.gateway_sockets())."""
    return render(
        http_port=http_port,
        admin_port=admin_port,
        backends=backends,
        descriptor_path=str(DESCRIPTOR),
        services=SERVICE_NAMES,
        access_log=access_log,
        token_bindings=token_bindings(),
        request_timeout_seconds=request_timeout_seconds,
    )


def token_bindings() -> list[tuple[str, str]]:
    """(verb, path template) of the REST bindings of every method that needs a token: all
    but the PUBLIC ones of the proto's access option, as the server's auth step reads it."""
    return sorted(
        (binding.verb, binding.template)
        for method, policy in POLICY.items()
        if not POLICY.is_public(method)
        for binding in policy.bindings
    )
