"""The real stack: `python -m server serve` as a subprocess and the real Envoy in front of
it, once per test session and database kind. Tests isolate themselves by partner."""

from __future__ import annotations

import json
import pathlib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import httpx
import pytest

from gateway.process import start_envoy_sync, stop_envoy_sync
from server.config import Settings
from server.edge import public_grpc, render_gateway, rest_certificate
from tests.helpers.certificates import Issued, TestCA, client_credentials
from tests.helpers.databases import database
from tests.helpers.partners import PartnerCredentials, create_partner
from tests.helpers.processes import ServerProcess, free_port, running_server, wait_serving
from tests.helpers.rest import RestPartner


@dataclass
class Stack:
    database_url: str
    server: ServerProcess
    base_url: str

    def new_partner(self) -> PartnerCredentials:
        return create_partner(self.database_url)


# Webhook retries in seconds rather than a day (tests/e2e/test_webhooks.py).
WEBHOOK_TEST_SCHEDULE = {
    "CUSTOMERS_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "CUSTOMERS_WEBHOOK_RETRY_MAX_AGE_SECONDS": "3",
}


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp(f"stack-{request.param}")
    with running_stack(request.param, folder) as running:
        yield running


@contextmanager
def running_stack(kind: str, folder: pathlib.Path, **env: str) -> Iterator[Stack]:
    """A database of `kind`, one server (the test schedule, plus `env`) and Envoy."""
    # The gateway's port first: the server must know its public URL (SIWE domain, KYC
    # verificationUrl, and where the sandbox KYC partner sends its callbacks).
    http_port, admin_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{http_port}"
    settings = {**WEBHOOK_TEST_SCHEDULE, **env}
    with (
        database(kind, folder) as url,
        running_server(url, CUSTOMERS_PUBLIC_URL=public_url, **settings) as server,
    ):
        config = render_gateway(
            http_port=http_port,
            admin_port=admin_port,
            backends=server.sockets,
            access_log=False,
        )
        envoy = start_envoy_sync(config, admin_port=admin_port, log_path=folder / "envoy.log")
        try:
            yield Stack(url, server, public_url)
        finally:
            stop_envoy_sync(envoy)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def partner(stack: Stack, http: httpx.Client) -> RestPartner:
    return RestPartner(http, stack.new_partner())


@pytest.fixture
def other_partner(stack: Stack, http: httpx.Client) -> RestPartner:
    return RestPartner(http, stack.new_partner())


GATEWAY_IDENTITY = "spiffe://customers.internal/gateway"
COMPLIANCE = "spiffe://customers.internal/compliance"  # operator
SUPPORT = "spiffe://customers.internal/support"  # reader


@dataclass
class TlsStack:
    """The production transport: HTTPS on the REST listener, Envoy's TLS gRPC listener
    (client certificates optional) on the public gRPC port, the worker behind it on its
    internal mTLS port, and certificates from a test CA (plus the bad ones)."""

    database_url: str
    server: ServerProcess
    base_url: str  # https://127.0.0.1:<REST port>, also CUSTOMERS_PUBLIC_URL
    grpc_address: str  # Envoy's public gRPC listener
    internal_address: str  # the worker's internal mTLS port (Envoy's hop)
    ca: TestCA
    gateway: Issued  # Envoy's hop certificate
    compliance: Issued  # principal with the operator role
    support: Issued  # principal with the reader role
    partner_cert: Issued  # from the CA, naming no principal
    foreign: Issued  # the compliance identity from another CA
    expired: Issued  # the compliance identity, expired

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca.cert_file))

    def http(self, *, http2: bool = False) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, verify=self.ssl_context(), http2=http2, timeout=10
        )

    def credentials(self, client: Issued | None) -> grpc.ChannelCredentials:
        """TLS to Envoy's gRPC port trusting the test CA, presenting `client` (or none)."""
        return client_credentials(self.ca, client)

    def new_partner(self) -> PartnerCredentials:
        return create_partner(self.database_url)


def _principals_file(folder: pathlib.Path) -> pathlib.Path:
    path = folder / "internal-services.json"
    services = [
        {"name": "compliance", "identity": COMPLIANCE, "roles": ["operator"]},
        {"name": "support", "identity": SUPPORT, "roles": ["reader"]},
    ]
    path.write_text(json.dumps({"services": services}))
    return path


def settings_of(server: ServerProcess) -> Settings:
    """The server's own settings, from the environment it was started with (what
    `python -m server gateway-config` would read on that host)."""
    prefix = "CUSTOMERS_"
    given = {
        name.removeprefix(prefix).lower(): value
        for name, value in server.env.items()
        if name.startswith(prefix)
    }
    return Settings(**given)


@pytest.fixture(scope="session")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStack]:
    folder = tmp_path_factory.mktemp("tls")
    ca = TestCA(folder)
    server_cert = ca.server_certificate()
    gateway = ca.issue("gateway", uris=(GATEWAY_IDENTITY,))
    http_port, admin_port, internal_port = free_port(), free_port(), free_port()
    public_url = f"https://127.0.0.1:{http_port}"
    with (
        database("sqlite", folder) as url,
        running_server(
            url,
            CUSTOMERS_PUBLIC_URL=public_url,
            CUSTOMERS_TLS_CERT_FILE=str(server_cert.cert_file),
            CUSTOMERS_TLS_KEY_FILE=str(server_cert.key_file),
            CUSTOMERS_GRPC_TLS_CERT_FILE=str(server_cert.cert_file),
            CUSTOMERS_GRPC_TLS_KEY_FILE=str(server_cert.key_file),
            CUSTOMERS_GRPC_CLIENT_CA_FILE=str(ca.cert_file),
            CUSTOMERS_GRPC_INTERNAL_PORT=str(internal_port),
            CUSTOMERS_GATEWAY_TLS_CERT_FILE=str(gateway.cert_file),
            CUSTOMERS_GATEWAY_TLS_KEY_FILE=str(gateway.key_file),
            CUSTOMERS_INTERNAL_SERVICES=str(_principals_file(folder)),
            # The sandbox KYC partner calls back to the HTTPS public URL; httpx trusts the
            # test CA through the usual variable, as it would a company CA.
            SSL_CERT_FILE=str(ca.cert_file),
            **WEBHOOK_TEST_SCHEDULE,
        ) as server,
    ):
        settings = settings_of(server)
        config = render_gateway(
            http_port=http_port,
            admin_port=admin_port,
            backends=server.sockets,
            access_log=False,
            rest_tls=rest_certificate(settings),
            grpc_edge=public_grpc(settings),
        )
        envoy = start_envoy_sync(config, admin_port=admin_port, log_path=folder / "envoy.log")
        other = TestCA(folder, name="someone else's CA")
        try:
            # Envoy is ready before its first health check of the hop has passed.
            wait_serving(server.address, client_credentials(ca, None))
            yield TlsStack(
                database_url=url,
                server=server,
                base_url=public_url,
                grpc_address=server.address,
                internal_address=f"127.0.0.1:{internal_port}",
                ca=ca,
                gateway=gateway,
                compliance=ca.issue("compliance", uris=(COMPLIANCE,)),
                support=ca.issue("support", uris=(SUPPORT,)),
                partner_cert=ca.issue("acme", dns=("acme.partners.example",)),
                foreign=other.issue("impostor", uris=(COMPLIANCE,)),
                expired=ca.issue("compliance-old", uris=(COMPLIANCE,), expired=True),
            )
        finally:
            stop_envoy_sync(envoy)


def error_reason(response: httpx.Response) -> str:
    """The ErrorInfo reason of a google.rpc.Status JSON error body."""
    body = response.json()
    assert set(body) >= {"code", "message"}, body
    for detail in body.get("details", []):
        if detail.get("@type", "").endswith("google.rpc.ErrorInfo"):
            return str(detail["reason"])
    raise AssertionError(f"no ErrorInfo in {body}")


__all__ = ["COMPLIANCE", "SUPPORT", "Stack", "TlsStack", "error_reason", "running_stack"]
