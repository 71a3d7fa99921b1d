"""The real stack with mTLS on the gRPC port (`python -m server serve` + the real Envoy):
partners over REST and over native gRPC (TLS) keep working, the operator's actions reach
partners through the gateway, and no REST request, nor a gRPC call through the gateway,
reaches the OperatorService."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
import sqlalchemy as sa

from client.signing import SigningClientInterceptor
from customers.v1 import customers_pb2, customers_pb2_grpc, operator_pb2, operator_pb2_grpc
from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway
from tests.e2e.conftest import error_reason
from tests.helpers.certificates import Issued, TestCA, client_credentials
from tests.helpers.databases import database
from tests.helpers.partners import create_partner
from tests.helpers.processes import ROOT, ServerProcess, free_port, running_server, server_env
from tests.helpers.receivers import running_receiver
from tests.helpers.rest import RestPartner

COMPLIANCE = "spiffe://customers.internal/compliance"


@dataclass
class TlsStack:
    database_url: str
    server: ServerProcess
    base_url: str
    ca: TestCA
    compliance: Issued
    partner_cert: Issued

    def operator(self) -> tuple[grpc.Channel, operator_pb2_grpc.OperatorServiceStub]:
        channel = grpc.secure_channel(
            self.server.address, client_credentials(self.ca, self.compliance)
        )
        return channel, operator_pb2_grpc.OperatorServiceStub(channel)


def _principals(folder: pathlib.Path) -> pathlib.Path:
    path = folder / "internal-services.json"
    path.write_text(
        json.dumps(
            {"services": [{"name": "compliance", "identity": COMPLIANCE, "roles": ["operator"]}]}
        )
    )
    return path


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStack]:
    folder = tmp_path_factory.mktemp("mtls")
    ca = TestCA(folder)
    server_cert = ca.server_certificate()
    http_port, admin_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{http_port}"
    with (
        database("sqlite", folder) as url,
        running_server(
            url,
            CUSTOMERS_PUBLIC_URL=public_url,
            CUSTOMERS_GRPC_TLS_CERT_FILE=str(server_cert.cert_file),
            CUSTOMERS_GRPC_TLS_KEY_FILE=str(server_cert.key_file),
            CUSTOMERS_GRPC_CLIENT_CA_FILE=str(ca.cert_file),
            CUSTOMERS_INTERNAL_SERVICES=str(_principals(folder)),
        ) as server,
    ):
        config = render_gateway(
            http_port=http_port, admin_port=admin_port, backends=server.sockets, access_log=False
        )
        envoy = start_envoy_sync(config, admin_port=admin_port, log_path=folder / "envoy.log")
        try:
            yield TlsStack(
                url,
                server,
                public_url,
                ca,
                ca.issue("compliance", uris=(COMPLIANCE,)),
                ca.issue("acme", dns=("acme.partners.example",)),
            )
        finally:
            stop_envoy_sync(envoy)


@pytest.fixture
def http(tls_stack: TlsStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tls_stack.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def partner(tls_stack: TlsStack, http: httpx.Client) -> RestPartner:
    return RestPartner(http, create_partner(tls_stack.database_url))


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
    # Native gRPC to the gateway's port: refused by its route, nothing reaches a worker.
    gateway = grpc.insecure_channel(tls_stack.base_url.removeprefix("http://"))
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
    channel, operator = tls_stack.operator()
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


async def test_partners_native_grpc_needs_a_client_certificate_and_then_works_signed(
    tls_stack: TlsStack, partner: RestPartner
) -> None:
    customer = partner.active_customer()  # over REST, through Envoy and the gateway socket
    signer = SigningClientInterceptor(partner.key, authority=urlsplit(tls_stack.base_url).netloc)
    metadata = (("authorization", f"Bearer {partner.token}"),)
    request = customers_pb2.GetCustomerRequest(customer_id=customer["id"])
    address = tls_stack.server.address
    no_cert = client_credentials(tls_stack.ca, None)
    async with grpc.aio.secure_channel(address, no_cert) as without:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customers_pb2_grpc.CustomerServiceStub(without).GetCustomer(
                request, metadata=metadata, timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake
    credentials = client_credentials(tls_stack.ca, tls_stack.partner_cert)
    interceptors = signer.channel_interceptors()
    async with grpc.aio.secure_channel(address, credentials, interceptors=interceptors) as signed:
        found = await customers_pb2_grpc.CustomerServiceStub(signed).GetCustomer(
            request, metadata=metadata, timeout=5
        )
    assert found.id == customer["id"] and found.status == found.Status.active
    async with grpc.aio.secure_channel(address, credentials) as unsigned_channel:
        with pytest.raises(grpc.aio.AioRpcError) as unsigned:
            await customers_pb2_grpc.CustomerServiceStub(unsigned_channel).GetCustomer(
                request, metadata=metadata, timeout=5
            )
    assert unsigned.value.code() == grpc.StatusCode.UNAUTHENTICATED  # a cert is not a token


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
