"""Two server replicas on one PostgreSQL database behind one Envoy."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway_sync
from tests.e2e.conftest import Stack
from tests.e2e.test_rest_idempotency import fire_concurrently
from tests.helpers.databases import postgres_database
from tests.helpers.processes import free_port, running_server
from tests.helpers.rest import RestPartner


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder: pathlib.Path = tmp_path_factory.mktemp("replicas")
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database())
        servers = [stack.enter_context(running_server(url)) for _ in range(2)]
        http_port, admin_port = free_port(), free_port()
        config = render_gateway_sync(
            url,
            http_port=http_port,
            admin_port=admin_port,
            backends=[("127.0.0.1", server.port) for server in servers],
            access_log=False,
        )
        envoy = start_envoy_sync(config, admin_port=admin_port, log_path=folder / "envoy.log")
        stack.callback(stop_envoy_sync, envoy)
        yield Stack(url, servers[0], f"http://127.0.0.1:{http_port}")


def test_fifty_identical_creates_across_two_replicas_make_one_customer(replicas: Stack) -> None:
    with httpx.Client(base_url=replicas.base_url, timeout=30) as http:
        partner = RestPartner(http, replicas.new_partner())
        for _ in range(3):
            fire_concurrently(replicas, partner, 50)
        assert len(partner.call("GET", "/customers").json()["customers"]) == 3
