"""Two server replicas on one PostgreSQL database behind one Envoy."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway
from tests.e2e.conftest import Stack
from tests.e2e.test_rest_idempotency import fire_concurrently
from tests.helpers.databases import postgres_database
from tests.helpers.processes import ServerProcess, free_port, running_server
from tests.helpers.rest import RestPartner
from tests.helpers.streams import change_streams_across


@dataclass
class Replicas(Stack):
    """The gateway in front of both, and each server process on its own."""

    servers: list[ServerProcess] = field(default_factory=list)


@contextmanager
def running_replicas(folder: pathlib.Path) -> Iterator[Replicas]:
    """A fresh PostgreSQL database, two server processes on it, and Envoy in front."""
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database())
        servers = [stack.enter_context(running_server(url)) for _ in range(2)]
        http_port, admin_port = free_port(), free_port()
        config = render_gateway(
            http_port=http_port,
            admin_port=admin_port,
            backends=[path for server in servers for path in server.sockets],
            access_log=False,
        )
        envoy = start_envoy_sync(config, admin_port=admin_port, log_path=folder / "envoy.log")
        stack.callback(stop_envoy_sync, envoy)
        yield Replicas(url, servers[0], f"http://127.0.0.1:{http_port}", servers)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    with running_replicas(tmp_path_factory.mktemp("replicas")) as running:
        yield running


def test_fifty_identical_creates_across_two_replicas_make_one_customer(
    replicas: Replicas,
) -> None:
    with httpx.Client(base_url=replicas.base_url, timeout=30) as http:
        partner = RestPartner(http, replicas.new_partner())
        for _ in range(3):
            fire_concurrently(replicas, partner, 50)
        assert len(partner.call("GET", "/customers").json()["customers"]) == 3


def test_a_change_made_through_one_process_streams_from_the_other(replicas: Replicas) -> None:
    """Separate processes: only PostgreSQL NOTIFY (and the outbox) connect them."""
    with httpx.Client(base_url=replicas.base_url, timeout=30) as http:
        partner = RestPartner(http, replicas.new_partner())
    first, second = replicas.servers
    # The servers' CUSTOMERS_PUBLIC_URL is the default, so native signatures name its host.
    created_id, streamed_id = asyncio.run(
        change_streams_across(
            first.address,
            second.address,
            key=partner.key,
            token=partner.token,
            authority="localhost:8080",
        )
    )
    assert streamed_id == created_id
