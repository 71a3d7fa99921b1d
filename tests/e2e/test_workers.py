"""Two worker processes (CUSTOMERS_WORKERS=2) behind one Envoy, on SQLite and on PostgreSQL:
idempotency, nonces, remembered credentials, streams and webhooks stay correct whichever
worker a request lands on."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace

import grpc
import httpx
import pytest

from client.signing import new_nonce, sign_headers
from customers.v1 import customers_pb2, customers_pb2_grpc
from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway
from tests.e2e.conftest import Stack, error_reason
from tests.e2e.test_rest_idempotency import fire_concurrently
from tests.e2e.test_webhooks import partner_events, subscribe
from tests.helpers.databases import database
from tests.helpers.processes import ServerProcess, free_port, running_server, wait_serving
from tests.helpers.receivers import running_receiver
from tests.helpers.rest import RestPartner
from tests.helpers.streams import change_streams_across

GET_CUSTOMER = "/customers.v1.CustomerService/GetCustomer"


@dataclass
class Workers(Stack):
    authority: str = ""  # host:port of CUSTOMERS_PUBLIC_URL: what native signatures name


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    folder: pathlib.Path = tmp_path_factory.mktemp(f"workers-{request.param}")
    http_port, admin_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{http_port}"
    with ExitStack() as stack:
        url = stack.enter_context(database(request.param, folder))
        server = stack.enter_context(
            running_server(url, workers=2, CUSTOMERS_PUBLIC_URL=public_url)
        )
        assert len(server.sockets) == 2
        config = render_gateway(
            http_port=http_port, admin_port=admin_port, backends=server.sockets, access_log=False
        )
        envoy = start_envoy_sync(config, admin_port=admin_port, log_path=folder / "envoy.log")
        stack.callback(stop_envoy_sync, envoy)
        yield Workers(url, server, public_url, authority=f"127.0.0.1:{http_port}")


@pytest.fixture
def partner(workers: Workers) -> Iterator[RestPartner]:
    with httpx.Client(base_url=workers.base_url, timeout=30) as http:
        yield RestPartner(http, workers.new_partner())


def on_worker(server: ServerProcess, index: int) -> str:
    """A channel target that reaches one worker only (native gRPC over its socket)."""
    return f"unix:{server.sockets[index]}"


def test_serve_runs_two_worker_processes_sharing_the_grpc_port(workers: Workers) -> None:
    supervisor = workers.server.process.pid
    children = pathlib.Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text()
    assert len(children.split()) == 2
    # Native gRPC on the shared TCP port reaches a worker (SO_REUSEPORT), as do both sockets.
    for target in (workers.server.address, *(f"unix:{s}" for s in workers.server.sockets)):
        wait_serving(target, timeout=5)


def test_fifty_identical_creates_over_two_workers_make_one_customer(
    workers: Workers, partner: RestPartner
) -> None:
    for _ in range(2):
        fire_concurrently(workers, partner, 50)
    assert len(partner.call("GET", "/customers").json()["customers"]) == 2


def test_a_nonce_used_on_one_worker_is_refused_on_the_other(
    workers: Workers, partner: RestPartner
) -> None:
    created = partner.create_customer()
    assert created.status_code == 201, created.text
    request = customers_pb2.GetCustomerRequest(customer_id=created.json()["id"])
    headers = {"authorization": f"Bearer {partner.token}"}
    added = sign_headers(
        partner.key,
        method="POST",
        authority=workers.authority,
        path=GET_CUSTOMER,
        query="",
        headers=headers,
        body=request.SerializeToString(),
        now=int(time.time()),
        nonce=new_nonce(),
    )
    metadata = (*headers.items(), *((name.lower(), value) for name, value in added.items()))

    async def twice() -> grpc.aio.AioRpcError:
        async with grpc.aio.insecure_channel(on_worker(workers.server, 0)) as first:
            stub = customers_pb2_grpc.CustomerServiceStub(first)
            assert (await stub.GetCustomer(request, metadata=metadata)).id == request.customer_id
        async with grpc.aio.insecure_channel(on_worker(workers.server, 1)) as second:
            stub = customers_pb2_grpc.CustomerServiceStub(second)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.GetCustomer(request, metadata=metadata)
        return raised.value

    refused = asyncio.run(twice())
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "nonce" in (refused.details() or "").lower()


def test_a_rotated_secret_revokes_old_tokens_on_every_worker_at_once(
    workers: Workers, partner: RestPartner
) -> None:
    """Both workers remember the token's credentials version; the rotation goes through
    one of them; the other forgets within a notification's latency, not the memo's 2 s."""
    old = partner.token
    for _ in range(4):  # round robin: both workers have answered (and remembered) it
        assert partner.call("GET", "/customers").status_code == 200
    rotated = partner.call("PUT", "/auth/credentials")
    assert rotated.status_code == 200, rotated.text
    started = time.monotonic()
    # Longer than a notification takes to land (NOTIFY: milliseconds; several SQLite
    # workers: the 50 ms PRAGMA data_version poll), far shorter than the memo's 2 s.
    time.sleep(0.25)
    answers = [partner.call("GET", "/customers") for _ in range(4)]
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, "the check below must run inside the memo's 2 s lifetime"
    # Round robin: both workers answer, and both must refuse the revoked token.
    assert [a.status_code for a in answers] == [401] * 4
    assert error_reason(answers[-1]) == "UNAUTHENTICATED"
    partner.credentials = replace(partner.credentials, api_secret=rotated.json()["apiSecret"])
    partner.token = partner.fresh_token()
    assert partner.token != old
    assert partner.call("GET", "/customers").status_code == 200


def test_a_change_through_one_worker_streams_from_the_other(
    workers: Workers, partner: RestPartner
) -> None:
    created_id, streamed_id = asyncio.run(
        change_streams_across(
            on_worker(workers.server, 0),
            on_worker(workers.server, 1),
            key=partner.key,
            token=partner.token,
            authority=workers.authority,
        )
    )
    assert streamed_id == created_id


def test_every_event_reaches_a_webhook_once_whichever_worker_made_it(
    workers: Workers, partner: RestPartner
) -> None:
    with running_receiver() as receiver:
        subscribe(partner, receiver)
        for _ in range(6):
            assert partner.create_customer().status_code == 201
        wanted = [e["eventId"] for e in partner_events(partner)]
        assert len(wanted) == 6
        receiver.wait_for(lambda r: r.has_events(wanted), timeout=20)
        time.sleep(1.5)  # a double delivery would have arrived by now
    delivered = [a for a in receiver.attempts if 200 <= a.answered < 300]
    assert len(delivered) == len(wanted), "two workers, and still one delivery per event"


def test_a_killed_worker_is_started_again_and_serves_its_socket(workers: Workers) -> None:
    supervisor = workers.server.process.pid
    path = pathlib.Path(f"/proc/{supervisor}/task/{supervisor}/children")
    before = [int(pid) for pid in path.read_text().split()]
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = [int(pid) for pid in path.read_text().split()]
        if len(now) == 2 and before[0] not in now:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no replacement worker: {path.read_text()!r}")
    for socket_path in workers.server.sockets:
        wait_serving(f"unix:{socket_path}", timeout=20)


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: pathlib.Path) -> None:
    """Even a SIGKILLed supervisor (no chance to stop them) leaves no worker behind."""
    with database("sqlite", tmp_path) as url, running_server(url, workers=2) as server:
        supervisor = server.process.pid
        path = pathlib.Path(f"/proc/{supervisor}/task/{supervisor}/children")
        workers = [int(pid) for pid in path.read_text().split()]
        assert len(workers) == 2
        server.process.kill()
        server.process.wait(5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status
