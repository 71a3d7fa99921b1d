"""Scenarios: each is one function from a Context to a Plan, registered by name.

A new scenario is one more `@scenario` function that makes its fixtures through the Context
and returns its cases: `ctx.grpc_case` for a direct gRPC call driven by h2load, `ctx.rest_case`
for a REST call through Envoy driven by wrk, plus `Micro`s measured in the bench process.
Both case kinds call the target once from Python first and refuse to build a case whose call
does not succeed, so the bench never measures an error path.

Every authenticated call is signed. The loads replay one signature made without a nonce
(valid 300 s, so it is made again before every run); `create` sends pre-signed requests,
each once. Scenarios marked `per_database` run on every `--db`; the others on the first.

`get` and `create` also measure the plain-framework baseline of SPEC 11 (bench/baseline/, a
FastAPI + uvicorn app doing the same checks and writes on the same database) in the same
run, driven by wrk exactly like the REST case, its CPU read from its uvicorn process.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
import os
import pathlib
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import sqlalchemy as sa

from bench.baseline.process import Baseline, BaselineError, running_baseline
from bench.load import LoadError, LoadResult, grpc_frame, h2load, percentile, wrk
from bench.micro import (
    idempotency_record,
    rate_limit_admit,
    raw_verify,
    siwe_recover,
    verifier_verify,
    verify_micro_fields,
)
from bench.presign import CREATE_LUA, Presigner
from bench.procs import (
    group_cpu,
    machine_busy_seconds,
    others_busy_cores,
    own_cpu_seconds,
    used_between,
)
from bench.report import NOISY_OTHER_CORES
from bench.runner import Case, Micro, Plan, Processes, Ratio, Results
from bench.stack import SignedPartner, Stack, create_partner, running_stack, signed_challenge
from client.signing import ECDSA_P384_SHA384, ED25519, PrivateSigningKey, sign_headers
from server.services.ports import SignedRequest

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
GET_CUSTOMER = "/customers.v1.CustomerService/GetCustomer"
KEY_TYPES = {ECDSA_P384_SHA384: ("p384", "P-384"), ED25519: ("ed25519", "Ed25519")}
# SPEC section 11.
PER_CORE_TARGET = {ECDSA_P384_SHA384: 1_000.0, ED25519: 1_500.0}
P384_CPU_TARGET_US = 1_000.0
REST_RATIO_TARGET = 0.8
# Through Envoy at least the baseline's req/s, at no more than its CPU per request.
BASELINE_RATIO_TARGET = 1.0
BASELINE = "plain FastAPI baseline"
CREATE_TARGET = {"sqlite": 300.0}
# Issue 10: PostgreSQL with 2 workers >= 200 creates/s (SQLite's SPEC 11 figure holds too).
CREATE_TARGET_2_WORKERS = {"sqlite": 300.0, "postgresql": 200.0}


@dataclass(frozen=True)
class Options:
    # h2load defaults mirror what the server sees behind Envoy: Envoy (one worker) multiplexes
    # all REST calls onto one HTTP/2 connection, and wrk keeps 16 requests in flight.
    h2load_clients: int = 1
    h2load_streams: int = 16
    wrk_threads: int = 1
    wrk_connections: int = 16
    micro_seconds: float = 1.0


Headers = dict[str, str]


class Context:
    """The running stack, options, and fixtures made once per stack and shared by scenarios."""

    def __init__(self, stack: Stack, options: Options, scratch: pathlib.Path) -> None:
        self.stack = stack
        self.options = options
        self.scratch = scratch
        self.http = httpx.Client(base_url=stack.base_url, timeout=10)
        self._partners: dict[str, SignedPartner] = {}
        self._customers: dict[str, dict[str, Any]] = {}
        self._presigner: Presigner | None = None
        self._baseline: Baseline | None = None
        self._running = contextlib.ExitStack()

    def close(self) -> None:
        self.http.close()
        if self._presigner is not None:
            self._presigner.close()
        self._running.close()

    def baseline(self) -> Baseline:
        """The plain-framework baseline on this stack's database, started once."""
        if self._baseline is None:
            try:
                self._baseline = self._running.enter_context(
                    running_baseline(self.stack.database_url, self.stack.base_url, self.scratch)
                )
            except BaselineError as error:
                raise LoadError(f"{BASELINE}: {error}") from error
        return self._baseline

    def beside(self, workers: int) -> Context:
        """A second stack of the same database kind with `workers` server processes, kept
        for the whole bench (idle while this stack's cases run)."""
        folder = self.scratch / f"workers-{workers}"
        folder.mkdir(exist_ok=True)
        stack = self._running.enter_context(running_stack(self.stack.kind, folder, workers))
        other = Context(stack, self.options, folder)
        self._running.callback(other.close)
        return other

    def partner(self, algorithm: str, role: str = "get") -> SignedPartner:
        """A partner with a bearer token and one registered key of `algorithm`."""
        name = f"{role}:{algorithm}"
        if name not in self._partners:
            made = create_partner(self.stack.database_url)
            self._partners[name] = SignedPartner(self.http, made, algorithm)
        return self._partners[name]

    def active_customer(self, algorithm: str) -> dict[str, Any]:
        """One customer of that partner taken through wallet proof and KYC to `active`."""
        if algorithm not in self._customers:
            self._customers[algorithm] = self.partner(algorithm).active_customer()
        return self._customers[algorithm]

    def presigner(self, partner: SignedPartner) -> Presigner:
        if self._presigner is None:
            self._presigner = Presigner(
                partner.key, partner.token, self.stack.authority, workers=os.cpu_count() or 2
            )
        return self._presigner

    def signed(
        self,
        key: PrivateSigningKey,
        token: str,
        *,
        method: str,
        path: str,
        body: bytes | None,
        authority: str | None = None,
    ) -> Headers:
        """Bearer token plus an RFC 9421 signature without a nonce (replayable within its
        300 s window, which is what a load tool needs), lower-case names; for Envoy's
        authority unless another is given."""
        headers = {"authorization": f"Bearer {token}"}
        added = sign_headers(
            key,
            method=method,
            authority=authority or self.stack.authority,
            path=path,
            query="",
            headers=headers,
            body=body,
        )
        return headers | {name.lower(): value for name, value in added.items()}

    def grpc_case(
        self,
        name: str,
        label: str,
        method: str,
        message: bytes,
        *,
        sign: Callable[[], Headers] | None = None,
        expect: Callable[[bytes], None] | None = None,
    ) -> Case:
        """h2load POSTing one framed request to `method` on the server's own port.

        gRPC errors come back as HTTP 200 with a grpc-status trailer h2load does not read. So
        the same bytes and headers are sent once from Python (must be OK), and every run must
        have received exactly one answer of that size per counted request: an error answer
        has no message at all, so a single one shows up as missing bytes.
        """
        headers: Headers = sign() if sign else {}
        with grpc.insecure_channel(self.stack.grpc_target) as channel:
            call = channel.unary_unary(method)  # no (de)serializers: raw bytes both ways
            try:
                answer: bytes = call(message, metadata=list(headers.items()), timeout=10)
            except grpc.RpcError as error:
                raise LoadError(f"{label}: sample call failed: {error}") from error
        if expect:
            expect(answer)
        answer_bytes = len(grpc_frame(answer))
        in_flight = self.options.h2load_clients * self.options.h2load_streams

        body = self.scratch / f"{name}.bin"
        body.write_bytes(grpc_frame(message))
        url = f"http://{self.stack.grpc_target}{method}"

        def prepare(_duration: float) -> None:
            if sign:
                headers.update(sign())

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

        return Case(name, label, "h2load", run, check, prepare)

    def rest_case(
        self,
        name: str,
        label: str,
        path: str,
        *,
        sign: Callable[[], Headers],
        expect: Callable[[Any], None] | None = None,
        base_url: str | None = None,
        processes: Processes | None = None,
    ) -> Case:
        """wrk GETting `path` through Envoy (or at `base_url`, served by `processes`: the
        baseline). Envoy maps gRPC errors to 4xx/5xx (and signature failures are 401), so
        wrk's non-2xx count (must be 0) catches error answers; one sample GET with the same
        headers checks the body."""
        headers = sign()
        url = f"{base_url or self.stack.base_url}{path}"
        sample = self.http.get(url, headers=headers)
        if sample.status_code != 200:
            raise LoadError(f"{label}: sample GET {path} -> {sample.status_code} {sample.text}")
        if expect:
            expect(sample.json())

        def prepare(_duration: float) -> None:
            headers.update(sign())

        def run(duration: float) -> LoadResult:
            return wrk(
                url,
                duration=duration,
                threads=self.options.wrk_threads,
                connections=self.options.wrk_connections,
                headers=headers,
            )

        return Case(name, label, "wrk", run, prepare=prepare, processes=processes)

    def must_refuse(self, label: str, method: str, url: str, **request: Any) -> None:
        """A tampered request must answer 401: a baseline that skipped verification would
        otherwise pass for a fast one."""
        answer = self.http.request(method, url, **request)
        if answer.status_code != 401:
            raise LoadError(
                f"{label}: a tampered {method} answered {answer.status_code}, not 401: "
                f"it does not really verify signatures ({answer.text[:200]})"
            )


def tampered_signature(value: str) -> str:
    """`label=:base64:` with one bit of the signature flipped."""
    label, _, rest = value.partition("=")
    raw = bytearray(base64.b64decode(rest.strip(":")))
    raw[len(raw) // 2] ^= 0x01
    return f"{label}=:{base64.b64encode(bytes(raw)).decode()}:"


@dataclass(frozen=True)
class Scenario:
    build: Callable[[Context], Plan]
    per_database: bool


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, *, per_database: bool = False
) -> Callable[[Callable[[Context], Plan]], Callable[[Context], Plan]]:
    def register(function: Callable[[Context], Plan]) -> Callable[[Context], Plan]:
        SCENARIOS[name] = Scenario(function, per_database)
        return function

    return register


def health_baseline(ctx: Context) -> Case:
    """The framework ceiling: grpc.aio with our interceptor chain, no auth, no database."""
    return ctx.grpc_case(
        "baseline.health", "Health/Check gRPC direct (baseline)", HEALTH_CHECK, b""
    )


def _verdict(value: float | None, target: float, *, at_most: bool = False) -> str:
    if value is None:
        return "n/a"
    ok = value <= target if at_most else value >= target
    return f"{'meets' if ok else 'BELOW'} {'<=' if at_most else '>='} {target:,.0f}"


def _fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "n/a" if value is None or math.isnan(value) else pattern.format(value)


def baseline_get_case(
    ctx: Context, partner: SignedPartner, path: str, short: str, title: str
) -> Case:
    """The same signed GET, sent to the plain-framework baseline (signed for its own
    authority), after checking that it answers exactly what the service answers and that it
    refuses a tampered signature and a signature made for another path."""
    baseline = ctx.baseline()
    label = f"GET /customers/{{id}} {BASELINE}, {title}"
    service = partner.call("GET", path)
    if service.status_code != 200:
        raise LoadError(f"{label}: the service's own GET {path} -> {service.status_code}")

    def sign(p: SignedPartner = partner, target: str = path) -> Headers:
        return ctx.signed(
            p.key, p.token, method="GET", path=target, body=None, authority=baseline.authority
        )

    def same_as_service(body: Any) -> None:
        if body != service.json():
            raise LoadError(f"{label}: answered {json.dumps(body)}, the service {service.text}")

    url = f"{baseline.base_url}{path}"
    headers = sign()
    bad = headers | {"signature": tampered_signature(headers["signature"])}
    ctx.must_refuse(label, "GET", url, headers=bad)
    ctx.must_refuse(label, "GET", f"{baseline.base_url}/customers/{uuid.uuid4()}", headers=headers)
    return ctx.rest_case(
        f"get.baseline.{short}",
        label,
        path,
        sign=sign,
        expect=same_as_service,
        base_url=baseline.base_url,
        processes=baseline.processes,
    )


def baseline_lines(
    results: Results, project: str, baseline: str, rate: str, unit: str
) -> list[str]:
    """SPEC 11's comparison in words: at least the baseline's rate, at most its CPU."""
    rps, base_rps = results.case(project, "rps"), results.case(baseline, "rps")
    cpu, base_cpu = results.case(project, "stack_us"), results.case(baseline, "stack_us")
    if rps is None or base_rps is None or cpu is None or base_cpu is None:
        return [f"    vs {BASELINE}: n/a"]
    verdict = "meets" if rps >= base_rps and cpu <= base_cpu else "BELOW"
    return [
        f"    vs {BASELINE}: {_fmt(rps)} vs {_fmt(base_rps)} {rate}, "
        f"{_fmt(cpu)} vs {_fmt(base_cpu)} us CPU per {unit} "
        f"({verdict} SPEC 11: >= its rate at <= its CPU)"
    ]


@scenario("get")
def get_customer(ctx: Context) -> Plan:
    """Signed GetCustomer of one active customer, REST through Envoy (wrk) vs direct gRPC
    (h2load) vs the plain FastAPI baseline (wrk), for a P-384 partner and an Ed25519 partner;
    beside each, the raw verify rate of the key type and the server verifier's rate, from
    the same rounds."""
    from customers.v1 import customers_pb2, resources_pb2

    cases = [health_baseline(ctx)]
    micros: list[Micro] = []
    ratios: list[Ratio] = []
    for algorithm, (short, title) in KEY_TYPES.items():
        partner = ctx.partner(algorithm)
        customer_id = str(ctx.active_customer(algorithm)["id"])
        path = f"/customers/{customer_id}"
        request = customers_pb2.GetCustomerRequest(customer_id=customer_id).SerializeToString()

        def same_customer(raw: bytes, wanted: str = customer_id) -> None:
            parsed = resources_pb2.Customer.FromString(raw)
            if parsed.id != wanted:
                raise LoadError(f"GetCustomer answered {parsed.id!r}, not {wanted!r}")

        def same_json(body: Any, wanted: str = customer_id) -> None:
            if body.get("id") != wanted:
                raise LoadError(f"GET /customers/{{id}} answered {json.dumps(body)}")

        def sign_grpc(p: SignedPartner = partner, message: bytes = request) -> Headers:
            return ctx.signed(p.key, p.token, method="POST", path=GET_CUSTOMER, body=message)

        def sign_rest(p: SignedPartner = partner, target: str = path) -> Headers:
            return ctx.signed(p.key, p.token, method="GET", path=target, body=None)

        def as_the_server_sees_it(
            sign: Callable[[], Headers] = sign_rest, target: str = path
        ) -> Any:
            """The SignedRequest the auth interceptor builds from the gateway's headers."""
            headers = {
                "user-agent": "wrk",
                "x-forwarded-proto": "http",
                "x-request-id": "3f1c2d9e-6a8b-4c1d-9e2f-0a1b2c3d4e5f",
                "x-gateway-method": "GET",
                "x-gateway-authority": ctx.stack.authority,
                "x-gateway-target": target,
                **sign(),
            }
            return SignedRequest(
                method="GET",
                authority=ctx.stack.authority,
                path=target,
                query="",
                headers=headers,
                body=None,
            )

        seconds = ctx.options.micro_seconds
        cases += [
            ctx.grpc_case(
                f"get.grpc.{short}",
                f"GetCustomer gRPC direct, {title}",
                GET_CUSTOMER,
                request,
                sign=sign_grpc,
                expect=same_customer,
            ),
            ctx.rest_case(
                f"get.rest.{short}",
                f"GET /customers/{{id}} via Envoy, {title}",
                path,
                sign=sign_rest,
                expect=same_json,
            ),
            baseline_get_case(ctx, partner, path, short, title),
        ]
        micros += [
            Micro(
                f"verify.raw.{short}",
                f"{title} raw verify (cryptography)",
                functools.partial(raw_verify, partner.key, seconds),
                verify_micro_fields(),
            ),
            Micro(
                f"verify.verifier.{short}",
                f"{title} RequestSignatureVerifier.verify",
                functools.partial(verifier_verify, partner.key, as_the_server_sees_it, seconds),
                verify_micro_fields(),
            ),
        ]
        ratios.append(
            Ratio(
                f"{title}: REST via Envoy / gRPC direct",
                f"get.rest.{short}",
                f"get.grpc.{short}",
                target=REST_RATIO_TARGET,
            )
        )
        ratios.append(
            Ratio(
                f"{title}: through Envoy ÷ {BASELINE}",
                f"get.rest.{short}",
                f"get.baseline.{short}",
                target=BASELINE_RATIO_TARGET,
            )
        )
    ratios.append(
        Ratio("P-384 GetCustomer gRPC / Health baseline", "get.grpc.p384", "baseline.health")
    )
    micros.append(
        Micro(
            "limits.admit",
            "PartnerRateLimiter.admit (per-partner rate limit)",
            functools.partial(rate_limit_admit, ctx.options.micro_seconds),
            verify_micro_fields(),
        )
    )

    def summary(results: Results) -> list[str]:
        lines = ["  SPEC 11, signed GET through Envoy (server = Envoy + Python):"]
        for algorithm, (short, title) in KEY_TYPES.items():
            rest, direct = f"get.rest.{short}", f"get.grpc.{short}"
            per_core = results.case(rest, "per_core")
            stack_us = results.case(rest, "stack_us")
            server_us = results.case(rest, "server_us")
            cpu_line = f"server CPU {_fmt(stack_us)} us/req"
            if algorithm == ECDSA_P384_SHA384:
                cpu_line += f" ({_verdict(stack_us, P384_CPU_TARGET_US, at_most=True)} us)"
            lines += [
                f"    {title}: {_fmt(per_core)} req/s per server core "
                f"({_verdict(per_core, PER_CORE_TARGET[algorithm])}); {cpu_line}",
                f"      Python alone {_fmt(1e6 / server_us if server_us else None)} req/s per "
                f"core via Envoy, {_fmt(results.case(direct, 'per_core'))} direct; "
                f"verify per core: raw {_fmt(results.micro(f'verify.raw.{short}', 'per_core'))}/s,"
                f" RequestSignatureVerifier "
                f"{_fmt(results.micro(f'verify.verifier.{short}', 'per_core'))}/s",
                *baseline_lines(results, rest, f"get.baseline.{short}", "req/s", "req"),
            ]
        lines.append(
            "    per server core = req/s / (server CPU s / wall s) = 1e6 / sum us; "
            "verify rates: per CPU-second of one thread"
        )
        return lines

    return Plan(
        scenario="get",
        title="signed GetCustomer, one active customer per partner (P-384 and Ed25519 keys)",
        cases=cases,
        ratios=ratios,
        micros=micros,
        summary=summary,
    )


def busy_cores(results: Results, name: str, workers: int) -> str:
    """Where the machine's cores went during a create case (medians): a rate that stops
    growing with workers while these add up to every core is CPU-bound, not waiting.
    SQLite's work is inside the server process (its PostgreSQL share is 0)."""
    rps, other = results.case(name, "rps"), results.case(name, "other_cores")
    parts = {role: results.case(name, f"{role}_us") for role in ("server", "envoy", "db", "client")}
    if rps is None or other is None or any(v is None for v in parts.values()):
        return f"    {workers} worker(s), cores busy: n/a"
    cores = {role: rps * (us or 0.0) / 1e6 for role, us in parts.items()}
    total = sum(cores.values()) + other
    return (
        f"    {workers} worker(s), cores busy: server {cores['server']:.2f} + Envoy "
        f"{cores['envoy']:.2f} + PostgreSQL {cores['db']:.2f} + load tool "
        f"{cores['client']:.2f} + everything else {other:.2f} = {total:.2f} of "
        f"{os.cpu_count()}"
    )


def sample_create(
    ctx: Context, presigner: Presigner, authority: str
) -> tuple[dict[str, str], bytes]:
    """The headers and body of one pre-signed create, as httpx sends them."""
    sample = ctx.scratch / "create.sample"
    presigner.write(sample, 1, int(time.time()), authority=authority)
    raw = sample.read_bytes().split(b"\n", 1)[1]
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)
    headers.pop("Content-Length", None)
    return headers, body


def create_case(
    ctx: Context,
    presigner: Presigner,
    engine: sa.Engine,
    *,
    name: str,
    label: str,
    base_url: str,
    authority: str,
    processes: Processes | None = None,
) -> Case:
    """wrk replaying pre-signed creates (signed for `authority`) to `base_url`, each once;
    every run must have created as many customers as wrk counted successes."""
    connections = ctx.options.wrk_connections
    requests_file = ctx.scratch / f"{name}.requests"
    script = ctx.scratch / "create.lua"
    script.write_text(CREATE_LUA)
    observed: list[float] = []
    counted: dict[str, int] = {}

    def customers() -> int:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM customers")).scalar_one())

    # One call from Python first: the signed request the files hold must answer 201.
    headers, body = sample_create(ctx, presigner, authority)
    answer = ctx.http.post(f"{base_url}/customers", content=body, headers=headers)
    if answer.status_code != 201:
        raise LoadError(f"{label}: sample POST -> {answer.status_code} {answer.text}")

    def prepare(duration: float) -> None:
        # Twice the best rate seen so far (400/s before the first run, the warm-up; at
        # least 100/s after): running out fails the run, an unused request costs a signature.
        rate = max(100.0, *observed) if observed else 400.0
        count = math.ceil(rate * 2 * max(1, round(duration))) + 4 * connections
        presigner.write(requests_file, count, int(time.time()), authority=authority)
        counted["before"] = customers()

    def run(duration: float) -> LoadResult:
        return wrk(
            f"{base_url}/customers",
            duration=duration,
            threads=ctx.options.wrk_threads,
            connections=connections,
            headers={},
            script=script,
            script_args=[str(requests_file), str(ctx.options.wrk_threads)],
        )

    def check(result: LoadResult) -> None:
        observed.append(result.rps)
        if "pre-signed requests exhausted: 0" not in result.output:
            raise LoadError(f"{label}: pre-signed requests ran out:\n{result.output}")
        made = customers() - counted["before"]
        # Requests still in flight when wrk stopped may have been created uncounted.
        if not result.requests <= made <= result.requests + connections:
            raise LoadError(
                f"{label}: wrk counted {result.requests} successes but {made} customers "
                "were created: some answers were not real creates"
            )

    return Case(name, label, "wrk", run, check, prepare, processes)


@scenario("create", per_database=True)
def create_customer(ctx: Context) -> Plan:
    """Signed, idempotent POST /customers through Envoy and to the plain FastAPI baseline:
    wrk replays pre-signed requests, each with its own Idempotency-Key, customer and nonce
    (so each is a real create); beside them, the idempotency record alone (claim +
    complete) on the same database."""
    partner = ctx.partner(ECDSA_P384_SHA384, role="create")
    presigner = ctx.presigner(partner)
    baseline = ctx.baseline()
    kind = ctx.stack.kind
    title = "SQLite" if kind == "sqlite" else "PostgreSQL"
    sync_url = ctx.stack.database_url.replace("+aiosqlite", "")
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)

    # The baseline must refuse a body that is not the one signed, and a changed
    # Idempotency-Key (a covered component), before anything is measured on it.
    base_label = f"POST /customers {BASELINE} ({title})"
    headers, body = sample_create(ctx, presigner, baseline.authority)
    url = f"{baseline.base_url}/customers"
    ctx.must_refuse(
        base_label, "POST", url, content=body.replace(b"bench-", b"bench_"), headers=headers
    )
    other_key = headers | {"Idempotency-Key": str(uuid.uuid4())}
    ctx.must_refuse(base_label, "POST", url, content=body, headers=other_key)

    case = create_case(
        ctx,
        presigner,
        engine,
        name=f"create.rest.{kind}",
        label=f"POST /customers via Envoy ({title})",
        base_url=ctx.stack.base_url,
        authority=ctx.stack.authority,
    )
    plain = create_case(
        ctx,
        presigner,
        engine,
        name=f"create.baseline.{kind}",
        label=base_label,
        base_url=baseline.base_url,
        authority=baseline.authority,
        processes=baseline.processes,
    )
    # The same load on a second stack with CUSTOMERS_WORKERS=2 (what `make run` starts here).
    two = ctx.beside(workers=2)
    two_partner = two.partner(ECDSA_P384_SHA384, role="create")
    two_engine = sa.create_engine(
        two.stack.database_url.replace("+aiosqlite", ""), poolclass=sa.pool.NullPool
    )
    doubled = create_case(
        two,
        two.presigner(two_partner),
        two_engine,
        name=f"create.rest2.{kind}",
        label=f"POST /customers via Envoy, 2 workers ({title})",
        base_url=two.stack.base_url,
        authority=two.stack.authority,
        processes=two.stack.processes,
    )
    partner_id = partner.partner.partner_id
    micro = Micro(
        f"idempotency.{kind}",
        f"IdempotencyStore claim+complete ({title})",
        functools.partial(
            idempotency_record, ctx.stack.database_url, partner_id, ctx.options.micro_seconds
        ),
        [
            ("pair_us", "claim+complete", "{:,.0f} us"),
            ("claim_us", "claim", "{:,.0f} us"),
            ("complete_us", "complete", "{:,.0f} us"),
            ("cpu_us", "client CPU", "{:,.0f} us"),
        ],
    )
    ratio = Ratio(
        f"through Envoy ÷ {BASELINE}",
        case.name,
        plain.name,
        target=BASELINE_RATIO_TARGET,
    )

    def summary(results: Results) -> list[str]:
        rps = results.case(case.name, "rps")
        target = CREATE_TARGET.get(kind)
        verdict = f" ({_verdict(rps, target)} /s, SPEC 11)" if target else " (SPEC: report)"
        pair = results.micro(micro.name, "pair_us")
        stack_us = results.case(case.name, "stack_us")
        rps2 = results.case(doubled.name, "rps")
        target2 = CREATE_TARGET_2_WORKERS.get(kind)
        verdict2 = f" ({_verdict(rps2, target2)} /s)" if target2 else ""
        return [
            f"  {title}: {_fmt(rps)} creates/s{verdict}; "
            f"{_fmt(results.case(case.name, 'per_core'))} per server core; "
            f"stack CPU {_fmt(stack_us)} us/create",
            f"  {title}, 2 workers: {_fmt(rps2)} creates/s{verdict2}; stack CPU "
            f"{_fmt(results.case(doubled.name, 'stack_us'))} us/create",
            *[
                busy_cores(results, name, count)
                for count, name in ((1, case.name), (2, doubled.name))
            ],
            *baseline_lines(results, case.name, plain.name, "creates/s", "create"),
            f"  the idempotency record alone: claim+complete {_fmt(pair)} us wall per key "
            f"(claim {_fmt(results.micro(micro.name, 'claim_us'))} us, complete "
            f"{_fmt(results.micro(micro.name, 'complete_us'))} us; "
            f"{_fmt(results.micro(micro.name, 'cpu_us'))} us of it Python CPU), i.e. at most "
            f"{_fmt(1e6 / pair if pair else None)} records/s one at a time",
            "  each create: its own Idempotency-Key, customer and signature nonce (SDK default)",
        ]

    return Plan(
        scenario=f"create/{kind}",
        title=f"signed, idempotent POST /customers, P-384 key, {title}",
        cases=[case, plain, doubled],
        ratios=[ratio],
        micros=[micro],
        summary=summary,
    )


@scenario("workers")
def workers(ctx: Context) -> Plan:
    """Signed GET through Envoy, P-384 and Ed25519: this stack (1 worker) beside a second
    stack on the same kind of database with 2 workers (CUSTOMERS_WORKERS=2), both driven by
    the same wrk load. The machine has 2 cores, shared with Envoy and wrk."""
    two = ctx.beside(workers=2)
    cases: list[Case] = []
    ratios: list[Ratio] = []
    for algorithm, (short, title) in KEY_TYPES.items():
        for count, here in ((1, ctx), (2, two)):
            partner = here.partner(algorithm, role="workers")
            customer_id = str(here.partner(algorithm, role="workers").active_customer()["id"])
            path = f"/customers/{customer_id}"

            def sign(p: SignedPartner = partner, target: str = path, c: Context = here) -> Headers:
                return c.signed(p.key, p.token, method="GET", path=target, body=None)

            cases.append(
                here.rest_case(
                    f"workers.{count}.{short}",
                    f"GET /customers/{{id}} via Envoy, {title}, {count} worker(s)",
                    path,
                    sign=sign,
                    processes=here.stack.processes,
                )
            )
        ratios.append(
            Ratio(
                f"{title}: 2 workers / 1 worker",
                f"workers.2.{short}",
                f"workers.1.{short}",
                target=1.0,
            )
        )
    return Plan(
        scenario="workers",
        title="CUSTOMERS_WORKERS: 1 vs 2 server processes behind one Envoy (signed GET)",
        cases=cases,
        ratios=ratios,
    )


CASCADE_ACCOUNTS, CASCADE_CARDS = 10, 5  # per customer; per account
CASCADE_TARGET_MS = 20.0  # issue 10: deactivate with its cascade, p50


def cascade_latency(
    partner: SignedPartner, customer_id: str, toggles: int, processes: Processes | None = None
) -> dict[str, float]:
    """`toggles` x (deactivate, activate) of one customer through Envoy, one at a time; each
    deactivate switches off 10 accounts and 50 cards in its transaction, each activate
    restores them. Wall time per call as the partner sees it (signing included, ~1 ms).

    With `processes` (the stack), also the cores everything else on the machine kept busy
    meanwhile (other sessions, another stack): one call at a time, latency is what a busy
    neighbour inflates first, so a figure read beside one must say so."""
    off: list[float] = []
    on: list[float] = []
    pids = [pid for group in processes().values() for pid in group] if processes else []
    stack_before, busy_before = group_cpu(pids), machine_busy_seconds()
    own_before, began = own_cpu_seconds(), time.monotonic()
    for _ in range(toggles):
        for path, times in (("deactivate", off), ("activate", on)):
            started = time.perf_counter()
            answer = partner.call("PATCH", f"/customers/{customer_id}/{path}")
            times.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200 or len(answer.content) == 0:
                raise LoadError(f"cascade {path}: {answer.status_code} {answer.text}")
    figures = {
        "off_p50": statistics.median(off),
        "off_p99": percentile(sorted(off), 99),
        "on_p50": statistics.median(on),
        "on_p99": percentile(sorted(on), 99),
    }
    if processes:
        wall = time.monotonic() - began
        stack = used_between(stack_before, group_cpu(pids))
        own = own_cpu_seconds() - own_before  # this process: signing, httpx
        figures["other_cores"] = others_busy_cores(
            machine_busy_seconds() - busy_before, stack + own, wall
        )
    return figures


@scenario("cascade", per_database=True)
def cascade(ctx: Context) -> Plan:
    """Deactivate (and activate) a customer with 10 accounts x 5 cards: the whole cascade is
    one transaction with its 61 events; latency through Envoy, one call at a time."""
    partner = ctx.partner(ECDSA_P384_SHA384, role="cascade")
    customer_id = str(partner.active_customer()["id"])
    for _ in range(CASCADE_ACCOUNTS):
        account = partner.call(
            "POST",
            f"/customers/{customer_id}/accounts",
            json={"type": "card_account", "currencies": ["EUR"]},
        )
        if account.status_code != 201:
            raise LoadError(f"cascade setup: {account.status_code} {account.text}")
        for _ in range(CASCADE_CARDS):
            card = partner.call(
                "POST", f"/accounts/{account.json()['id']}/cards", json={"type": "virtual"}
            )
            if card.status_code != 201:
                raise LoadError(f"cascade setup: {card.status_code} {card.text}")
    kind = ctx.stack.kind
    title = "SQLite" if kind == "sqlite" else "PostgreSQL"
    micro = Micro(
        f"cascade.{kind}",
        f"deactivate/activate, {CASCADE_ACCOUNTS} accounts x {CASCADE_CARDS} cards ({title})",
        functools.partial(cascade_latency, partner, customer_id, 20, ctx.stack.processes),
        [
            ("off_p50", "deactivate p50", "{:,.1f} ms"),
            ("off_p99", "p99", "{:,.1f} ms"),
            ("on_p50", "activate p50", "{:,.1f} ms"),
            ("on_p99", "p99", "{:,.1f} ms"),
            ("other_cores", "other cpu", "{:.2f}"),
        ],
    )

    def summary(results: Results) -> list[str]:
        p50 = results.micro(micro.name, "off_p50")
        return [
            f"  {title}: deactivate with its cascade p50 {_fmt(p50, '{:,.1f}')} ms "
            f"({_verdict(p50, CASCADE_TARGET_MS, at_most=True)} ms), "
            f"p99 {_fmt(results.micro(micro.name, 'off_p99'), '{:,.1f}')} ms; activate p50 "
            f"{_fmt(results.micro(micro.name, 'on_p50'), '{:,.1f}')} ms",
            *(
                [
                    f"    WARNING: other processes kept {other:.2f} cores busy meanwhile "
                    f"(median of the runs): the latency is overstated"
                ]
                if (other := results.micro(micro.name, "other_cores")) is not None
                and other > NOISY_OTHER_CORES
                else []
            ),
        ]

    return Plan(
        scenario=f"cascade/{kind}",
        title=f"customer deactivate/activate cascade, {title}",
        cases=[],
        micros=[micro],
        summary=summary,
    )


@scenario("siwe")
def siwe(ctx: Context) -> Plan:
    """recover_signer on a real signed challenge (issued by POST /customers, signed by a
    fresh wallet), with coincurve (libsecp256k1) and with eth-keys' pure-Python backend."""
    body, wallet = ctx.partner(ECDSA_P384_SHA384).new_customer()
    text, signature = signed_challenge(wallet, body["challenge"])
    seconds = ctx.options.micro_seconds
    fields = verify_micro_fields()
    micros = [
        Micro(
            "siwe.coincurve",
            "recover_signer, coincurve",
            functools.partial(
                siwe_recover, text, signature, wallet.address, native=False, seconds=seconds
            ),
            fields,
        ),
        Micro(
            "siwe.native",
            "recover_signer, pure Python (ECC_BACKEND_CLASS=native)",
            functools.partial(
                siwe_recover, text, signature, wallet.address, native=True, seconds=seconds
            ),
            fields,
        ),
    ]

    def summary(results: Results) -> list[str]:
        fast = results.micro("siwe.coincurve", "per_core")
        slow = results.micro("siwe.native", "per_core")
        ratio = fast / slow if fast and slow else None
        return [
            f"  coincurve {_fmt(fast)}/s vs pure Python {_fmt(slow)}/s per core: "
            f"{_fmt(ratio, '{:.0f}')}x (a real {len(text)}-character challenge)"
        ]

    return Plan(
        scenario="siwe",
        title="SIWE challenge signature recovery (server.adapters.wallet.recover_signer)",
        cases=[],
        micros=micros,
        summary=summary,
    )
