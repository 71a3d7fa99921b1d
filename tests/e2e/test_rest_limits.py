"""Requests at the edges of what the gateway accepts get an answer, never an empty 5xx
(SPEC section 9): what Envoy lets through, the server takes; what it refuses is a JSON 4xx
with an ErrorInfo reason that names no internals."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.conftest import error_reason
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet


def assert_json_error(answer: object, status: int, reason: str) -> None:
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    assert answer.headers["content-type"].startswith("application/json")  # type: ignore[attr-defined]
    assert error_reason(answer) == reason  # type: ignore[arg-type]
    body = answer.text  # type: ignore[attr-defined]
    for internal in ("x-gateway", "x-envoy", "metadata size", "grpc-"):
        assert internal not in body, body


@pytest.mark.parametrize("size", [65_000, 65_536])
def test_a_valid_create_just_under_the_body_limit_is_served(
    partner: RestPartner, size: int
) -> None:
    """The whole raw body travels to the server for its Content-Digest check."""
    body = {"chainId": caip10(new_wallet()), "externalId": uuid.uuid4().hex, "padding": ""}
    body["padding"] = "x" * (size - len(json.dumps(body, separators=(",", ":"))))
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) == size
    answer = partner.call(
        "POST", "/customers", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 201, answer.text  # unknown fields are ignored (DECISIONS)


def test_a_body_over_the_limit_is_a_json_413(partner: RestPartner) -> None:
    raw = b'{"padding":"' + b"x" * 70_000 + b'"}'
    answer = partner.call(
        "POST", "/customers", content=raw, headers={"content-type": "application/json"}
    )
    assert_json_error(answer, 413, "REQUEST_TOO_LARGE")


@pytest.mark.parametrize("size", [40_000, 60_000])
def test_a_huge_query_or_path_is_a_json_431(partner: RestPartner, size: int) -> None:
    query = partner.call("GET", "/customers", params={"externalId": "q" * size})
    assert_json_error(query, 431, "HEADERS_TOO_LARGE")
    path = partner.call("GET", "/customers/" + "p" * size)
    assert_json_error(path, 431, "HEADERS_TOO_LARGE")


def test_sixty_extra_headers_are_served(partner: RestPartner) -> None:
    extra = {f"x-extra-{i}": "v" for i in range(60)}
    answer = partner.call("GET", "/customers", headers=extra)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("count", [89, 95])
def test_more_headers_than_the_gateway_takes_are_a_json_431(
    partner: RestPartner, count: int
) -> None:
    """Envoy counts at most 80 request headers, so what it adds stays under every limit."""
    extra = {f"x-extra-{i}": "v" for i in range(count)}
    answer = partner.call("GET", "/customers", headers=extra)
    assert_json_error(answer, 431, "HEADERS_TOO_LARGE")


@pytest.mark.parametrize("kib", [8, 12, 16, 24, 30])
def test_large_headers_the_gateway_accepts_are_served_every_time(
    partner: RestPartner, kib: int
) -> None:
    """Between grpc-core's default 8 KiB soft and 16 KiB hard metadata limits the outcome
    used to be random; now the server's limit is above everything the gateway forwards."""
    headers = {"x-big": "b" * (kib * 1024 - 1500)}
    for _ in range(5):
        answer = partner.call("GET", "/customers", headers=headers)
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("kib", [40, 60])
def test_headers_over_the_gateway_limit_are_a_json_431(partner: RestPartner, kib: int) -> None:
    answer = partner.call("GET", "/customers", headers={"x-big": "b" * (kib * 1024)})
    assert_json_error(answer, 431, "HEADERS_TOO_LARGE")


@pytest.mark.parametrize("outcome", ["ok", "created", "not found", "conflict"])
def test_rest_answers_carry_no_grpc_protocol_headers(partner: RestPartner, outcome: str) -> None:
    """Neither plain 200s (no status rewrite) nor rewritten or error answers leak grpc-*."""
    if outcome == "ok":
        answer = partner.call("GET", "/customers")
        expected = 200
    elif outcome == "created":
        answer = partner.create_customer()
        expected = 201
    elif outcome == "not found":
        answer = partner.call("GET", f"/customers/{uuid.uuid4()}")
        expected = 404
    else:
        created = partner.create_customer().json()
        answer = partner.call("PATCH", f"/customers/{created['id']}/activate")
        expected = 409
    assert answer.status_code == expected, answer.text
    assert not [name for name in answer.headers if name.lower().startswith("grpc-")]
    assert "x-http-status" not in answer.headers
