"""`python -m server dev` with the production transport and two workers: Envoy serves
HTTPS and the public gRPC port, and spreads native gRPC over both workers' internal mTLS
ports (each its own, picked by the supervisor when CUSTOMERS_GRPC_INTERNAL_PORT is 0)."""

from __future__ import annotations

import json
import pathlib
import ssl
import tempfile
import time
import uuid
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from customers.v1 import operator_pb2, operator_pb2_grpc
from tests.e2e.test_dev_restart import dev_stack
from tests.helpers.certificates import TestCA, client_credentials
from tests.helpers.databases import sqlite_database
from tests.helpers.processes import free_port, server_env

GATEWAY = "spiffe://customers.internal/gateway"
COMPLIANCE = "spiffe://customers.internal/compliance"


def _wait_https(base_url: str, context: ssl.SSLContext, process: Any, log: pathlib.Path) -> None:
    """Until a REST call over HTTPS reaches a worker (a refused token: 401)."""
    body = {"apiKey": str(uuid.uuid4()), "apiSecret": "wrong"}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.post(f"{base_url}/auth/token", json=body, verify=context).status_code == 401:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"dev did not answer over HTTPS:\n{log.read_text()}")


def _served(metrics_port: int) -> float:
    """How many OperatorService GetCustomer calls one worker handled (its /metrics)."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("grpc_server_handled_total{")
        and 'method="/customers.v1.OperatorService/GetCustomer"' in line
    )


def _grpc_hosts(admin_port: int) -> dict[str, dict[str, Any]]:
    """The gRPC hop cluster's hosts by port, from Envoy's admin /clusters."""
    clusters = httpx.get(f"http://127.0.0.1:{admin_port}/clusters?format=json").json()
    (cluster,) = [c for c in clusters["cluster_statuses"] if c["name"] == "customers_grpc_tls"]
    hosts = {}
    for host in cluster["host_statuses"]:
        stats = {s["name"]: int(s.get("value", 0)) for s in host["stats"]}
        healthy = host["health_status"].get("eds_health_status") == "HEALTHY" and not any(
            flag for key, flag in host["health_status"].items() if key.startswith("failed")
        )
        hosts[str(host["address"]["socket_address"]["port_value"])] = {
            "healthy": healthy,
            **stats,
        }
    return hosts


def test_dev_with_tls_serves_https_and_spreads_native_grpc_over_every_worker(
    tmp_path: pathlib.Path,
) -> None:
    ca = TestCA(tmp_path)
    server = ca.server_certificate()
    gateway = ca.issue("gateway", uris=(GATEWAY,))
    compliance = ca.issue("compliance", uris=(COMPLIANCE,))
    principals = tmp_path / "services.json"
    principals.write_text(
        json.dumps(
            {"services": [{"name": "compliance", "identity": COMPLIANCE, "roles": ["reader"]}]}
        )
    )
    http_port, admin_port, grpc_port = free_port(), free_port(), free_port()
    metrics_port = free_port()  # worker N: this + N
    base_url = f"https://127.0.0.1:{http_port}"
    log = tmp_path / "dev.log"
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    with sqlite_database(tmp_path) as url:
        env = server_env(
            url,
            grpc_port,
            CUSTOMERS_WORKERS="2",
            CUSTOMERS_HTTP_PORT=str(http_port),
            CUSTOMERS_ENVOY_ADMIN_PORT=str(admin_port),
            CUSTOMERS_PUBLIC_URL=base_url,
            CUSTOMERS_GATEWAY_SOCKET_DIR=tempfile.mkdtemp(prefix="cust-dev-"),
            CUSTOMERS_TLS_CERT_FILE=str(server.cert_file),
            CUSTOMERS_TLS_KEY_FILE=str(server.key_file),
            CUSTOMERS_GRPC_TLS_CERT_FILE=str(server.cert_file),
            CUSTOMERS_GRPC_TLS_KEY_FILE=str(server.key_file),
            CUSTOMERS_GRPC_CLIENT_CA_FILE=str(ca.cert_file),
            CUSTOMERS_GRPC_INTERNAL_PORT="0",
            CUSTOMERS_GATEWAY_TLS_CERT_FILE=str(gateway.cert_file),
            CUSTOMERS_GATEWAY_TLS_KEY_FILE=str(gateway.key_file),
            CUSTOMERS_INTERNAL_SERVICES=str(principals),
            CUSTOMERS_METRICS_PORT=str(metrics_port),
        )
        with dev_stack(env, log) as dev:
            _wait_https(base_url, context, dev, log)
            address = f"127.0.0.1:{grpc_port}"
            with grpc.secure_channel(address, client_credentials(ca, None)) as anonymous:
                answer = health_pb2_grpc.HealthStub(anonymous).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            deadline = time.monotonic() + 20
            while not all(h["healthy"] for h in _grpc_hosts(admin_port).values()):
                assert time.monotonic() < deadline, _grpc_hosts(admin_port)
                time.sleep(0.2)
            assert len(_grpc_hosts(admin_port)) == 2
            with grpc.secure_channel(address, client_credentials(ca, compliance)) as channel:
                stub = operator_pb2_grpc.OperatorServiceStub(channel)
                for _ in range(6):
                    try:
                        stub.GetCustomer(
                            operator_pb2.OperatorGetCustomerRequest(customer_id=str(uuid.uuid4())),
                            timeout=5,
                        )
                    except grpc.RpcError as error:  # the principal got through: not found
                        assert error.code() == grpc.StatusCode.NOT_FOUND, error
            # Round robin over the two internal ports: each worker served some of them.
            served = [_served(metrics_port + worker) for worker in range(2)]
            assert sum(served) == 6 and all(count > 0 for count in served), served
            assert dev.poll() is None
