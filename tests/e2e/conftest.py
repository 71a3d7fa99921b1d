"""The real stack: `python -m server serve` as a subprocess and the real Envoy in front of
it, once per test session and database kind. Tests isolate themselves by partner."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway
from tests.helpers.databases import database
from tests.helpers.partners import PartnerCredentials, create_partner
from tests.helpers.processes import ServerProcess, free_port, running_server
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


def error_reason(response: httpx.Response) -> str:
    """The ErrorInfo reason of a google.rpc.Status JSON error body."""
    body = response.json()
    assert set(body) >= {"code", "message"}, body
    for detail in body.get("details", []):
        if detail.get("@type", "").endswith("google.rpc.ErrorInfo"):
            return str(detail["reason"])
    raise AssertionError(f"no ErrorInfo in {body}")


__all__ = ["Stack", "error_reason", "running_stack"]
