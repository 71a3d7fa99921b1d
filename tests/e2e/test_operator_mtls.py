"""The production stack (`python -m server serve` + the real Envoy, HTTPS on the REST
listener, the public gRPC port Envoy's TLS listener; tests/e2e/conftest.py `tls_stack`):
the operator's actions reach partners through the gateway, and no REST request, nor a gRPC
call to the REST listener, reaches the OperatorService. Partners' native gRPC and the
certificate checks of the public gRPC port: test_edge_tls.py."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import grpc
import httpx
import pytest
import sqlalchemy as sa

from customers.v1 import operator_pb2, operator_pb2_grpc
from tests.e2e.conftest import TlsStack, error_reason
from tests.helpers.processes import ROOT, free_port, server_env
from tests.helpers.receivers import running_receiver
from tests.helpers.rest import RestPartner


def _operator(
    tls_stack: TlsStack,
) -> tuple[grpc.Channel, operator_pb2_grpc.OperatorServiceStub]:
    channel = grpc.secure_channel(
        tls_stack.grpc_address, tls_stack.credentials(tls_stack.compliance)
    )
    return channel, operator_pb2_grpc.OperatorServiceStub(channel)


@pytest.fixture
def http(tls_stack: TlsStack) -> Iterator[httpx.Client]:
    with tls_stack.http() as client:
        yield client


@pytest.fixture
def partner(tls_stack: TlsStack, http: httpx.Client) -> RestPartner:
    return RestPartner(http, tls_stack.new_partner())


def _audit_count(database_url: str) -> int:
    engine = sa.create_engine(database_url.replace("+aiosqlite", ""))
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(sa.text("SELECT COUNT(*) FROM operator_actions")).scalar_one()
            )
    finally:
        engine.dispose()


def test_rest_never_reaches_the_operator_service(
    tls_stack: TlsStack, http: httpx.Client, partner: RestPartner
) -> None:
    customer = partner.active_customer()
    before = _audit_count(tls_stack.database_url)
    path = "/customers.v1.OperatorService/SuspendCustomer"
    body = {"customerId": customer["id"], "reason": "through the gateway"}
    for answer in (
        partner.call("POST", path, json=body),
        partner.call("POST", "/v1" + path, json=body),
        http.post(path, json=body),
        partner.call("GET", f"/operator/customers/{customer['id']}"),
    ):
        assert answer.status_code == 404, answer.text
        assert error_reason(answer) == "ROUTE_NOT_FOUND"
    # Native gRPC to the REST listener (HTTPS, h2 by ALPN): refused by its route, nothing
    # reaches a worker, whatever certificate the caller has.
    gateway = grpc.secure_channel(
        tls_stack.base_url.removeprefix("https://"), tls_stack.credentials(tls_stack.compliance)
    )
    with gateway, pytest.raises(grpc.RpcError) as refused:
        operator_pb2_grpc.OperatorServiceStub(gateway).SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer["id"], reason="x"),
            timeout=5,
        )
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED  # HTTP 404 from Envoy
    assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "active"
    assert _audit_count(tls_stack.database_url) == before


def test_an_operator_suspension_reaches_the_partner_through_the_gateway(
    tls_stack: TlsStack, partner: RestPartner
) -> None:
    customer = partner.active_customer()
    channel, operator = _operator(tls_stack)
    with channel, running_receiver() as receiver:
        subscribed = partner.call(
            "PUT", "/webhooks", json={"callbackUrl": receiver.url, "types": ["customer.updated"]}
        )
        assert subscribed.status_code == 201, subscribed.text
        receiver.secret = subscribed.json()["secret"]
        suspended = operator.SuspendCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer["id"], reason="AML review 42"),
            timeout=10,
        )
        assert suspended.customer.status == suspended.customer.Status.inactive
        shown = partner.call("GET", f"/customers/{customer['id']}").json()
        assert shown["status"] == "inactive"
        events = partner.call("GET", "/events", params={"types": "customer.updated"}).json()
        last = events["events"][-1]
        assert last["customer"] == shown
        # The partner's webhook gets it like any other change, signed, with the GET's shape.
        receiver.wait_for(lambda r: r.has_events([last["eventId"]]))
        delivered = receiver.deliveries[last["eventId"]]
        assert delivered["webhookType"] == "customer.updated"
        assert delivered["status"] == "inactive" and delivered["id"] == customer["id"]
        assert all(a.verified for a in receiver.attempts)

        refused = partner.call("PATCH", f"/customers/{customer['id']}/activate")
        assert refused.status_code == 409, refused.text
        assert error_reason(refused) == "CUSTOMER_SUSPENDED"
        assert "AML review 42" in refused.json()["message"]
        assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "inactive"

        operator.ReinstateCustomer(
            operator_pb2.OperatorActionRequest(customer_id=customer["id"], reason="cleared"),
            timeout=10,
        )
    assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "active"


def test_a_bad_principals_file_stops_the_server_at_start_with_a_clear_error(
    tmp_path: pathlib.Path, tls_stack: TlsStack
) -> None:
    bad = tmp_path / "services.json"
    bad.write_text(json.dumps({"services": [{"name": "x", "identity": "y.z", "roles": ["root"]}]}))
    env = server_env(
        tls_stack.database_url,
        free_port(),
        CUSTOMERS_GRPC_TLS_CERT_FILE=str(tls_stack.compliance.cert_file),
        CUSTOMERS_GRPC_TLS_KEY_FILE=str(tls_stack.compliance.key_file),
        CUSTOMERS_GRPC_CLIENT_CA_FILE=str(tls_stack.ca.cert_file),
        CUSTOMERS_INTERNAL_SERVICES=str(bad),
        CUSTOMERS_GATEWAY_SOCKET_DIR=str(tmp_path / "run"),
    )
    started = subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert started.returncode != 0
    stderr = started.stderr.decode()
    assert "CUSTOMERS_INTERNAL_SERVICES" in stderr and "roles must be among" in stderr
