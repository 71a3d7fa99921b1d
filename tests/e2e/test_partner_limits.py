"""Per-partner limits (SPEC section 14) through the real Envoy and the real gRPC port: a
partner over its request rate gets 429 / RESOURCE_EXHAUSTED `RATE_LIMITED` with
Retry-After and the RateLimit headers, and nothing of the refused request runs, while
another partner is served; the bucket refills; open streams and webhook subscriptions per
partner are capped.

Two stacks of their own (the session's stack keeps the generous defaults): one with a tiny
quota, one with tiny caps. No assertion on timing, only on outcomes: the quota refills one
request every 5 s, so a refilled token during a burst of requests is allowed for.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import grpc
import httpx
import pytest
import sqlalchemy as sa

from client.idempotency import IdempotencyKeyInterceptor, new_key
from client.signing import SigningAuth, SigningClientInterceptor, new_nonce, sign_headers
from customers.v1 import customers_pb2, customers_pb2_grpc
from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway
from tests.e2e.conftest import Stack, error_reason
from tests.helpers.databases import database
from tests.helpers.processes import free_port, running_server
from tests.helpers.receivers import sync_url
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet
from tests.integration.test_grpc_customers import reason_of

RATE, BURST = 0.2, 4  # one request per 5 s, four at once
POLICY = f'"default";q={BURST};w={int(BURST / RATE)}'
MAX_STREAMS, MAX_WEBHOOKS = 2, 2


@contextmanager
def limited_stack(
    kind: str, folder: pathlib.Path, *, workers: int = 1, **env: str
) -> Iterator[Stack]:
    http_port, admin_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{http_port}"
    with ExitStack() as stack:
        url = stack.enter_context(database(kind, folder))
        server = stack.enter_context(
            running_server(url, workers=workers, CUSTOMERS_PUBLIC_URL=public_url, **env)
        )
        config = render_gateway(
            http_port=http_port, admin_port=admin_port, backends=server.sockets, access_log=False
        )
        envoy = start_envoy_sync(config, admin_port=admin_port, log_path=folder / "envoy.log")
        stack.callback(stop_envoy_sync, envoy)
        yield Stack(url, server, public_url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def throttled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp(f"throttled-{request.param}")
    with limited_stack(
        request.param,
        folder,
        CUSTOMERS_RATE_LIMIT_PER_SECOND=str(RATE),
        CUSTOMERS_RATE_LIMIT_BURST=str(BURST),
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def throttled_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The same quota on a machine of two workers (PostgreSQL, the multi-process database)."""
    folder = tmp_path_factory.mktemp("throttled-workers")
    with limited_stack(
        "postgresql",
        folder,
        workers=2,
        CUSTOMERS_RATE_LIMIT_PER_SECOND=str(RATE),
        CUSTOMERS_RATE_LIMIT_BURST=str(BURST),
    ) as stack:
        yield stack


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def capped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp(f"capped-{request.param}")
    with limited_stack(
        request.param,
        folder,
        CUSTOMERS_MAX_STREAMS_PER_PARTNER=str(MAX_STREAMS),
        CUSTOMERS_MAX_WEBHOOKS_PER_PARTNER=str(MAX_WEBHOOKS),
    ) as stack:
        yield stack


def rest_partner(stack: Stack, http: httpx.Client) -> RestPartner:
    """A partner with its key registered (that request takes one token of its quota)."""
    return RestPartner(http, stack.new_partner())


def authority(stack: Stack) -> str:
    return stack.base_url.removeprefix("http://")


def presigned_create(stack: Stack, partner: RestPartner) -> tuple[bytes, dict[str, str]]:
    """A signed `POST /customers` (with its nonce and Idempotency-Key) that can be sent
    again byte for byte."""
    body = json.dumps({"chainId": caip10(new_wallet()), "externalId": uuid.uuid4().hex}).encode()
    headers = {
        "Authorization": f"Bearer {partner.token}",
        "Idempotency-Key": new_key(),
        "Content-Type": "application/json",
    }
    headers |= sign_headers(
        partner.key,
        method="POST",
        authority=authority(stack),
        path="/customers",
        query="",
        headers=headers,
        body=body,
        now=int(time.time()),
        nonce=new_nonce(),
    )
    return body, headers


def send(stack: Stack, prepared: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = prepared
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        return client.post("/customers", content=body, headers=headers)


def stored_rows(stack: Stack, table: str, partner_id: str) -> int:
    rows = sa.table(table, sa.column("partner_id", sa.Uuid))
    query = sa.select(sa.func.count()).select_from(rows)
    engine = sa.create_engine(sync_url(stack.database_url))
    try:
        with engine.connect() as connection:
            found = connection.execute(query.where(rows.c.partner_id == uuid.UUID(partner_id)))
            return int(found.scalar_one())
    finally:
        engine.dispose()


def assert_rate_limited(answer: httpx.Response, workers: int = 1) -> int:
    """A REST refusal as the contract says; answers its Retry-After (a worker's: with N
    workers each request costs N tokens of the machine's bucket, so up to N / RATE)."""
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert error_reason(answer) == "RATE_LIMITED"
    assert answer.json()["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    retry_after = int(answer.headers["retry-after"])
    assert 1 <= retry_after <= int(workers / RATE) + 1
    assert answer.headers["ratelimit-policy"] == POLICY
    assert answer.headers["ratelimit"] == f'"default";r=0;t={retry_after}'
    assert "x-http-status" not in answer.headers  # the server's note to the gateway
    [info] = [d for d in answer.json()["details"] if d["@type"].endswith("ErrorInfo")]
    assert info["metadata"] == {"retryAfter": str(retry_after)}
    return retry_after


def until_admitted(stack: Stack, prepared: tuple[bytes, dict[str, str]]) -> httpx.Response:
    """Sends the request, and again after each Retry-After, until it is not refused."""
    for _ in range(5):
        answer = send(stack, prepared)
        if answer.status_code != 429:
            return answer
        time.sleep(assert_rate_limited(answer))
    raise AssertionError("still rate limited after five Retry-After waits")


def test_a_partner_over_its_rate_is_refused_with_429_and_nothing_runs_while_another_is_served(
    throttled: Stack,
) -> None:
    with httpx.Client(base_url=throttled.base_url, timeout=30) as http:
        greedy, modest = rest_partner(throttled, http), rest_partner(throttled, http)
    flood = [presigned_create(throttled, greedy) for _ in range(10)]
    polite = [presigned_create(throttled, modest) for _ in range(BURST - 1)]
    with ThreadPoolExecutor(max_workers=len(flood) + len(polite)) as pool:
        # Interleaved, so the polite partner's requests arrive amid the flood.
        sent = [
            pool.submit(send, throttled, p)
            for pair in zip(flood[: len(polite)], polite, strict=True)
            for p in pair
        ]
        sent += [pool.submit(send, throttled, p) for p in flood[len(polite) :]]
        answers = [future.result() for future in sent]
    flood_answers = answers[0 : 2 * len(polite) : 2] + answers[2 * len(polite) :]
    polite_answers = answers[1 : 2 * len(polite) : 2]

    assert [a.status_code for a in polite_answers] == [201] * len(polite)
    created = [a for a in flood_answers if a.status_code == 201]
    refused = [a for a in flood_answers if a.status_code != 201]
    # The key registration took one token; one more may have refilled meanwhile.
    assert 1 <= len(created) <= BURST, [a.status_code for a in flood_answers]
    for answer in refused:
        assert_rate_limited(answer)
    # Nothing of a refused create ran: no customer, no idempotency record (the key
    # registration's is the one more), no event.
    partner_id = greedy.credentials.partner_id
    assert stored_rows(throttled, "customers", partner_id) == len(created)
    assert stored_rows(throttled, "idempotency_keys", partner_id) == len(created) + 1
    assert stored_rows(throttled, "events", partner_id) == len(created)

    # The bucket refills: the very same signed request, sent again once Retry-After has
    # passed, runs (its nonce was not burned, its Idempotency-Key holds no answer).
    again = flood[flood_answers.index(refused[0])]
    retried = until_admitted(throttled, again)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert stored_rows(throttled, "customers", partner_id) == len(created) + 1


def test_two_workers_share_the_machines_quota_rather_than_each_granting_it(
    throttled_workers: Stack,
) -> None:
    """Each worker charges a request two tokens of a bucket holding the machine's burst, so
    the two together admit at most the burst, not twice it (docs/DECISIONS.md, Limits)."""
    stack = throttled_workers
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        partner = rest_partner(stack, http)
    flood = [presigned_create(stack, partner) for _ in range(4 * BURST)]
    with ThreadPoolExecutor(max_workers=len(flood)) as pool:
        answers = list(pool.map(lambda prepared: send(stack, prepared), flood))
    created = [a for a in answers if a.status_code == 201]
    # The key registration took its share; a refill during the flood may add one.
    assert 1 <= len(created) <= BURST, [a.status_code for a in answers]
    for answer in answers:
        if answer.status_code != 201:
            assert_rate_limited(answer, workers=2)
    assert stored_rows(stack, "customers", partner.credentials.partner_id) == len(created)


def test_reads_v1_paths_and_streams_share_the_partners_quota(throttled: Stack) -> None:
    with httpx.Client(base_url=throttled.base_url, timeout=30) as http:
        partner = rest_partner(throttled, http)
        answers = [partner.call("GET", "/v1/customers") for _ in range(BURST + 2)]
        assert {a.status_code for a in answers} == {200, 429}
        assert_rate_limited(answers[-1])
        # A stream refused before its first message is a plain JSON 429, not an event stream.
        assert_rate_limited(partner.call("GET", "/customers:watch"))


def test_native_grpc_over_the_limit_is_resource_exhausted_with_the_headers_as_metadata(
    throttled: Stack,
) -> None:
    with httpx.Client(base_url=throttled.base_url, timeout=30) as http:
        partner = rest_partner(throttled, http)
    signer = SigningClientInterceptor(partner.key, authority=authority(throttled))
    metadata = (("authorization", f"Bearer {partner.token}"),)

    async def until_refused() -> tuple[int, grpc.aio.AioRpcError]:
        interceptors = [IdempotencyKeyInterceptor(), *signer.channel_interceptors()]
        async with grpc.aio.insecure_channel(
            throttled.server.address, interceptors=interceptors
        ) as channel:
            stub = customers_pb2_grpc.CustomerServiceStub(channel)
            for served in range(BURST + 2):
                try:
                    await stub.ListCustomers(
                        customers_pb2.ListCustomersRequest(), metadata=metadata
                    )
                except grpc.aio.AioRpcError as error:
                    return served, error
        raise AssertionError("never refused")

    served, refused = asyncio.run(until_refused())
    assert 1 <= served <= BURST
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(refused) == "RATE_LIMITED"
    headers = dict(refused.initial_metadata() or ())
    retry_after = int(headers["retry-after"])
    assert retry_after >= 1
    assert headers["ratelimit-policy"] == POLICY
    assert headers["ratelimit"] == f'"default";r=0;t={retry_after}'
    # One bucket for both doors: the same partner over REST is refused too.
    with httpx.Client(base_url=throttled.base_url, timeout=30) as http:
        rest = http.get(
            "/customers",
            headers={"Authorization": f"Bearer {partner.token}"},
            auth=SigningAuth(partner.key),
        )
    assert_rate_limited(rest)


class OpenStream:
    """An SSE stream of a partner's changes, held open by `resources`; once its first line
    is read the server has registered it. The line iterator is kept: dropping it would
    close the connection."""

    def __init__(self, client: httpx.Client, partner: RestPartner, resources: ExitStack) -> None:
        self.answer = resources.enter_context(
            client.stream(
                "GET",
                "/customers:watch",
                headers={"Authorization": f"Bearer {partner.token}"},
                auth=SigningAuth(partner.key),
            )
        )
        self.status_code = self.answer.status_code
        if self.status_code == 200:
            self.lines = self.answer.iter_lines()
            while not next(self.lines).startswith("data:"):
                pass
        else:
            self.answer.read()


def test_a_partner_holding_its_most_streams_gets_429_too_many_streams(capped: Stack) -> None:
    timeout = httpx.Timeout(20, read=20)
    with ExitStack() as resources:
        client = resources.enter_context(httpx.Client(base_url=capped.base_url, timeout=timeout))
        partner, other = rest_partner(capped, client), rest_partner(capped, client)
        held = [OpenStream(client, partner, resources) for _ in range(MAX_STREAMS)]
        assert [s.status_code for s in held] == [200] * MAX_STREAMS
        with ExitStack() as extra:
            refused = OpenStream(client, partner, extra).answer
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"].startswith("application/json")
            assert error_reason(refused) == "TOO_MANY_STREAMS"
        # Another partner's streams are its own.
        assert OpenStream(client, other, resources).status_code == 200

        # Native gRPC counts the same streams.
        async def native() -> grpc.aio.AioRpcError:
            signer = SigningClientInterceptor(partner.key, authority=authority(capped))
            async with grpc.aio.insecure_channel(
                capped.server.address, interceptors=signer.channel_interceptors()
            ) as channel:
                stream = customers_pb2_grpc.CustomerServiceStub(channel).WatchCustomers(
                    customers_pb2.WatchCustomersRequest(),
                    metadata=(("authorization", f"Bearer {partner.token}"),),
                )
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stream.read()
                return raised.value

        error = asyncio.run(native())
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_of(error) == "TOO_MANY_STREAMS"

    # Closed streams free their places (the server notices the disconnect soon after).
    with ExitStack() as resources:
        client = resources.enter_context(httpx.Client(base_url=capped.base_url, timeout=timeout))
        deadline = time.monotonic() + 20
        while True:
            with ExitStack() as attempt:
                reopened = [OpenStream(client, partner, attempt) for _ in range(MAX_STREAMS)]
                if all(s.status_code == 200 for s in reopened):
                    break
            assert time.monotonic() < deadline, "closed streams still counted"
            time.sleep(0.2)


def put_webhook(partner: RestPartner, **body: object) -> httpx.Response:
    payload = {"callbackUrl": "http://127.0.0.1:9/hook", "types": ["customer.updated"]} | body
    return partner.call("PUT", "/webhooks", json=payload)


def test_webhook_subscriptions_are_capped_per_partner_in_the_store(capped: Stack) -> None:
    with httpx.Client(base_url=capped.base_url, timeout=30) as http:
        partner = rest_partner(capped, http)
        # Concurrent creates cannot pass the cap together (counted in the creating
        # transaction, under the partner's cursor row lock).
        with ThreadPoolExecutor(max_workers=MAX_WEBHOOKS + 3) as pool:
            answers = list(pool.map(lambda _: put_webhook(partner), range(MAX_WEBHOOKS + 3)))
        assert sorted(a.status_code for a in answers) == [201] * MAX_WEBHOOKS + [409] * 3
        refused = next(a for a in answers if a.status_code == 409)
        assert error_reason(refused) == "WEBHOOK_LIMIT_REACHED"
        assert f"at most {MAX_WEBHOOKS} " in refused.json()["message"]
        listed = partner.call("GET", "/webhooks").json()["webhooks"]
        assert len(listed) == MAX_WEBHOOKS
        assert stored_rows(capped, "webhook_subscriptions", partner.credentials.partner_id) == (
            MAX_WEBHOOKS
        )

        # Changing one that exists is not a new one; deleting one makes room.
        first = listed[0]["id"]
        assert put_webhook(partner, id=first, types=["card.updated"]).status_code == 200
        assert partner.call("DELETE", f"/webhooks/{first}").status_code == 204
        assert put_webhook(partner).status_code == 201
        assert error_reason(put_webhook(partner)) == "WEBHOOK_LIMIT_REACHED"
        # Another partner's subscriptions are its own.
        assert put_webhook(rest_partner(capped, http)).status_code == 201


def test_the_429_answers_match_the_published_document(throttled: Stack) -> None:
    from tests.helpers.openapi import check, document

    with httpx.Client(base_url=throttled.base_url, timeout=30) as http:
        partner = rest_partner(throttled, http)
        answers = [partner.call("GET", "/customers") for _ in range(BURST + 2)]
    refused = answers[-1]
    assert refused.status_code == 429
    documented = check("GET", "/customers", refused)
    assert "RATE_LIMITED" in documented["x-error-reasons"]
    for name in ("Retry-After", "RateLimit-Policy", "RateLimit"):
        assert name in documented["headers"]
        assert refused.headers[name]
    assert re.fullmatch(
        document()["components"]["headers"]["Retry-After"]["schema"]["pattern"],
        refused.headers["retry-after"],
    )
