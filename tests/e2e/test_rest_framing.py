"""HTTP the gateway does not serve (tunnels, transfer codings) is refused at once with the
same google.rpc.Status JSON as every other gateway error: a 4xx naming the problem
(SPEC section 9), never a hang or a 5xx. Sent over raw sockets, since an HTTP client
library will not send these requests as a careless or hostile client can."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from dataclasses import dataclass

from tests.e2e.conftest import Stack


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
