"""Scenarios: each is one function from a Context to a Plan, registered by name.

A new scenario (signed GET, idempotent POST, ...) is one more `@scenario` function that makes
its fixtures through the Context and returns its cases: `ctx.grpc_case` for a direct gRPC call
driven by h2load, `ctx.rest_case` for a REST call through Envoy driven by wrk. Both call the
target once from Python first and refuse to build a case whose call does not succeed, so the
bench never measures an error path.
"""

from __future__ import annotations

import functools
import json
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from bench.load import LoadError, LoadResult, grpc_frame, h2load, wrk
from bench.runner import Case, Plan, Ratio
from bench.stack import RestClient, Stack, create_partner

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
GET_CUSTOMER = "/customers.v1.CustomerService/GetCustomer"


@dataclass(frozen=True)
class Options:
    # h2load defaults mirror what the server sees behind Envoy: Envoy (one worker) multiplexes
    # all REST calls onto one HTTP/2 connection, and wrk keeps 16 requests in flight.
    h2load_clients: int = 1
    h2load_streams: int = 16
    wrk_threads: int = 1
    wrk_connections: int = 16


class Context:
    """The running stack, options, and fixtures made once per bench and shared by scenarios."""

    def __init__(self, stack: Stack, options: Options, scratch: pathlib.Path) -> None:
        self.stack = stack
        self.options = options
        self.scratch = scratch
        self.http = httpx.Client(base_url=stack.base_url, timeout=10)

    def close(self) -> None:
        self.http.close()

    @functools.cached_property
    def partner(self) -> RestClient:
        """A partner with a bearer token (POST /auth/token through Envoy)."""
        return RestClient(self.http, create_partner(self.stack.database_url))

    @functools.cached_property
    def active_customer(self) -> dict[str, Any]:
        """One customer taken through wallet proof and KYC to `active`."""
        return self.partner.active_customer()

    def grpc_case(
        self,
        name: str,
        label: str,
        method: str,
        message: bytes,
        *,
        token: str | None = None,
        expect: Callable[[bytes], None] | None = None,
    ) -> Case:
        """h2load POSTing one framed request to `method` on the server's own port.

        gRPC errors come back as HTTP 200 with a grpc-status trailer h2load does not read. So
        the same bytes are sent once from Python (must be OK), and every run must have
        received exactly one answer of that size per counted request: an error answer has
        no message at all, so a single one shows up as missing bytes.
        """
        metadata = [("authorization", f"Bearer {token}")] if token else []
        with grpc.insecure_channel(self.stack.grpc_target) as channel:
            call = channel.unary_unary(method)  # no (de)serializers: raw bytes both ways
            try:
                answer: bytes = call(message, metadata=metadata, timeout=10)
            except grpc.RpcError as error:
                raise LoadError(f"{label}: sample call failed: {error}") from error
        if expect:
            expect(answer)
        answer_bytes = len(grpc_frame(answer))
        in_flight = self.options.h2load_clients * self.options.h2load_streams

        body = self.scratch / f"{name}.bin"
        body.write_bytes(grpc_frame(message))
        headers = {"authorization": metadata[0][1]} if metadata else {}
        url = f"http://{self.stack.grpc_target}{method}"

        def run(duration: float) -> LoadResult:
            return h2load(
                url,
                body,
                duration=duration,
                clients=self.options.h2load_clients,
                streams=self.options.h2load_streams,
                headers=headers,
                log_path=self.scratch / f"{name}.log",
            )

        def check(result: LoadResult) -> None:
            received = result.data_bytes or 0
            # Streams cut at the end of the timed window may have received their message
            # without being counted as done, hence the in-flight allowance above.
            low, high = result.requests * answer_bytes, (result.requests + in_flight) * answer_bytes
            if not low <= received <= high:
                raise LoadError(
                    f"{label}: {received} response bytes for {result.requests} requests, "
                    f"expected {answer_bytes} each: some answers were gRPC errors"
                )

        return Case(name, label, "h2load", run, check)

    def rest_case(
        self,
        name: str,
        label: str,
        path: str,
        *,
        token: str | None = None,
        expect: Callable[[Any], None] | None = None,
    ) -> Case:
        """wrk GETting `path` through Envoy. Envoy maps gRPC errors to 4xx/5xx, so wrk's
        non-2xx count (must be 0) catches error answers; one sample GET checks the body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        sample = self.http.get(path, headers=headers)
        if sample.status_code != 200:
            raise LoadError(f"{label}: sample GET {path} -> {sample.status_code} {sample.text}")
        if expect:
            expect(sample.json())
        url = f"{self.stack.base_url}{path}"

        def run(duration: float) -> LoadResult:
            return wrk(
                url,
                duration=duration,
                threads=self.options.wrk_threads,
                connections=self.options.wrk_connections,
                headers=headers,
            )

        return Case(name, label, "wrk", run)


Scenario = Callable[[Context], Plan]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = function
        return function

    return register


def health_baseline(ctx: Context) -> Case:
    """The framework ceiling: grpc.aio with our interceptor chain, no auth, no database."""
    return ctx.grpc_case(
        "baseline.health", "Health/Check gRPC direct (baseline)", HEALTH_CHECK, b""
    )


@scenario("get")
def get_customer(ctx: Context) -> Plan:
    """GetCustomer of one active customer, direct gRPC vs REST through Envoy (SPEC 11: REST
    >= 80% of direct)."""
    from customers.v1 import customers_pb2, resources_pb2

    customer_id = str(ctx.active_customer["id"])
    token = ctx.partner.token

    def same_customer(raw: bytes) -> None:
        parsed = resources_pb2.Customer.FromString(raw)
        if parsed.id != customer_id:
            raise LoadError(f"GetCustomer answered {parsed.id!r}, not {customer_id!r}")

    def same_json(body: Any) -> None:
        if body.get("id") != customer_id:
            raise LoadError(f"GET /customers/{{id}} answered {json.dumps(body)}")

    request = customers_pb2.GetCustomerRequest(customer_id=customer_id).SerializeToString()
    return Plan(
        scenario="get",
        title="GetCustomer, one active customer, bearer token",
        cases=[
            health_baseline(ctx),
            ctx.grpc_case(
                "get.grpc",
                "GetCustomer gRPC direct",
                GET_CUSTOMER,
                request,
                token=token,
                expect=same_customer,
            ),
            ctx.rest_case(
                "get.rest",
                "GET /customers/{id} via Envoy",
                f"/customers/{customer_id}",
                token=token,
                expect=same_json,
            ),
        ],
        ratios=[
            Ratio("REST via Envoy / gRPC direct", "get.rest", "get.grpc", target=0.8),
            Ratio("gRPC GetCustomer / Health baseline", "get.grpc", "baseline.health"),
        ],
    )
