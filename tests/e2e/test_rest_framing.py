"""HTTP the gateway does not serve (tunnels, transfer codings, undeclared methods) is
refused at once with the same google.rpc.Status JSON as every other gateway error: a 4xx
naming the problem (SPEC section 9), never a hang or a 5xx. Tunnels and transfer codings are
sent over raw sockets, since an HTTP client library will not send those requests as a
careless or hostile client can."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import Stack, error_reason
from tests.helpers.rest import RestPartner


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # until the whole answer had arrived

    def reason(self) -> str:
        status = json.loads(self.body)
        assert set(status) >= {"code", "message", "details"}, status
        return str(status["details"][0]["reason"])


def send_raw(stack: Stack, request: bytes, *, timeout: float = 3.0) -> RawAnswer:
    """Sends the bytes, reads one HTTP/1.1 answer (by its Content-Length)."""
    address = urllib.parse.urlsplit(stack.base_url)
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        while len(body) < int(headers.get("content-length", "0")):
            chunk = sock.recv(65536)
            assert chunk, "connection closed in the middle of the body"
            body += chunk
    return RawAnswer(int(lines[0].split()[1]), headers, body, time.monotonic() - started)


def test_connect_is_answered_at_once_with_a_json_405(stack: Stack) -> None:
    answer = send_raw(stack, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert answer.status == 405, answer
    assert answer.seconds < 2.0, answer.seconds
    assert answer.headers["content-type"] == "application/json"
    assert "GET" in answer.headers["allow"]
    assert answer.reason() == "METHOD_NOT_ALLOWED"
    assert b"CONNECT" in answer.body


def test_a_transfer_coding_other_than_chunked_is_a_json_400(stack: Stack) -> None:
    body = b'{"chainId":"x","externalId":"y"}'
    request = (
        b"POST /customers HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    answer = send_raw(stack, request)
    assert answer.status == 400, answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.reason() == "UNSUPPORTED_TRANSFER_ENCODING"
    assert b"Transfer-Encoding" in answer.body


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("QUERY", "/customers/0b0c2a3e-4c1e-4b59-9a57-54b2a6f5d0e1", "GET"),
        ("PATCH", "/customers", "GET, POST"),
        ("TRACE", "/v1/auth/signing", "GET, PUT"),
        ("OPTIONS", "/webhooks/some-id", "GET, DELETE"),
        ("PUT", "/accounts/some-id/activate", "PATCH"),
        ("GET", "/kyc/callbacks", "POST"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
def test_an_undeclared_method_on_a_known_path_is_a_json_405_with_allow(
    http: httpx.Client, method: str, path: str, allow: str
) -> None:
    # No body, so no Content-Type: a QUERY like that Envoy refuses before routing (RFC
    # 10008); it is the same 405 all the same (gateway/methods.py).
    answer = http.request(method, path)
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allow
    assert answer.headers["content-type"] == "application/json"
    assert error_reason(answer) == "METHOD_NOT_ALLOWED"
    assert allow in answer.json()["message"]


def test_a_query_with_a_body_is_the_same_405(http: httpx.Client) -> None:
    answer = http.request("QUERY", "/customers", json={"status": "active"})
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == "GET, POST"
    assert error_reason(answer) == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("method", "path"), [("QUERY", "/nowhere"), ("TRACE", "/nowhere"), ("GET", "/customers/a/b")]
)
def test_an_undocumented_path_is_a_json_404_whatever_the_method(
    http: httpx.Client, method: str, path: str
) -> None:
    answer = http.request(method, path)
    assert answer.status_code == 404, answer.text
    assert "allow" not in answer.headers
    assert error_reason(answer) == "ROUTE_NOT_FOUND"


def test_a_405_runs_nothing_and_declared_methods_still_work(partner: RestPartner) -> None:
    customer = partner.create_customer().json()
    refused = partner.call("DELETE", f"/customers/{customer['id']}")
    assert refused.status_code == 405, refused.text
    assert refused.headers["allow"] == "GET"
    still = partner.call("GET", f"/customers/{customer['id']}")
    assert still.status_code == 200, still.text
    assert still.json()["status"] == customer["status"]


def test_a_path_two_templates_match_still_serves_its_own_method(http: httpx.Client) -> None:
    # /kyc/callbacks is also /kyc/{session_id} (GET only): its POST must reach the server,
    # which refuses the unsigned callback itself.
    answer = http.post("/kyc/callbacks", json={"sessionId": "x"})
    assert answer.status_code == 401, answer.text
    assert error_reason(answer) == "INVALID_CALLBACK_SIGNATURE"
