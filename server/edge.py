"""The Envoy config for this deployment: its ports, and the workers' gateway sockets as its
backends. Nothing secret goes into it (Envoy's admin `/config_dump` shows every value; it
names the TLS key files, and redacts keys it has loaded): what makes a REST call the
gateway's is the socket it arrives on, and a native gRPC call's forwarded client
certificate is believed only on Envoy's own mTLS hop (gateway/tls.py)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from gateway.config import REQUEST_TIMEOUT_SECONDS, render
from gateway.tls import Certificate, GrpcEdge, certificate_sha256
from server.config import Settings
from server.rpc.policy import POLICY
from server.rpc.services import SERVICE_NAMES

DESCRIPTOR = pathlib.Path(__file__).resolve().parent.parent / "gen" / "customers.pb"


def render_gateway(
    *,
    http_port: int,
    admin_port: int,
    backends: Sequence[str],
    access_log: bool = True,
    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    rest_tls: Certificate | None = None,
    grpc_edge: GrpcEdge | None = None,
    bind_address: str = "127.0.0.1",
) -> str:
    """`backends`: the workers' gateway socket paths (Settings.gateway_sockets()).
    `rest_tls`, `grpc_edge`: HTTPS and the public gRPC listener (rest_certificate() and
    public_grpc() make them from Settings); None for development's plain ports.
    `bind_address`: the listeners' address (CUSTOMERS_ENVOY_BIND_ADDRESS)."""
    return render(
        http_port=http_port,
        admin_port=admin_port,
        backends=backends,
        descriptor_path=str(DESCRIPTOR),
        services=SERVICE_NAMES,
        access_log=access_log,
        token_bindings=token_bindings(),
        request_timeout_seconds=request_timeout_seconds,
        rest_tls=rest_tls,
        grpc_edge=grpc_edge,
        bind_address=bind_address,
    )


def rest_certificate(settings: Settings) -> Certificate | None:
    """The REST listener's certificate (CUSTOMERS_TLS_CERT_FILE / _KEY_FILE), if any."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return Certificate(settings.tls_cert_file, settings.tls_key_file)


def public_grpc(
    settings: Settings, *, backends: Sequence[tuple[str, int]] | None = None
) -> GrpcEdge | None:
    """Envoy's public gRPC listener on CUSTOMERS_GRPC_PORT, when gRPC TLS is configured.
    `backends`: the workers' internal ports (default: this machine's,
    Settings.internal_grpc_addresses())."""
    if not settings.grpc_tls:
        return None
    assert settings.grpc_tls_cert_file and settings.grpc_tls_key_file
    assert settings.grpc_client_ca_file
    if settings.gateway_tls_cert_file is None or settings.gateway_tls_key_file is None:
        raise ValueError(
            "CUSTOMERS_GRPC_TLS_CERT_FILE needs CUSTOMERS_GATEWAY_TLS_CERT_FILE and"
            " CUSTOMERS_GATEWAY_TLS_KEY_FILE: Envoy's own client certificate for its hop to"
            f" the workers (SAN {settings.gateway_identity!r}, from the client CA)"
        )
    return GrpcEdge(
        port=settings.grpc_port,
        certificate=Certificate(settings.grpc_tls_cert_file, settings.grpc_tls_key_file),
        client_ca_file=settings.grpc_client_ca_file,
        hop=Certificate(settings.gateway_tls_cert_file, settings.gateway_tls_key_file),
        backends=list(backends if backends is not None else settings.internal_grpc_addresses()),
        # The workers serve the same certificate on their internal ports.
        backend_sha256=certificate_sha256(settings.grpc_tls_cert_file),
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
