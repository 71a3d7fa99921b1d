"""Uploads that cannot hold the gateway's memory (issue 13 row 4). Before: 100-300
unauthenticated uploads stopping 4 KiB short of their Content-Length were all buffered
(~50 KiB of Envoy memory each) and still open 45 s later, and a body trickled a byte at a
time outlived the 300 s idle timeout. Now a body without any token is refused before it is
read, and a whole request must arrive within the request timeout.

These tests run their own Envoy, with a 2 s request timeout, in front of the session's
server; raw sockets, since HTTP client libraries will not stall mid-body on purpose."""

from __future__ import annotations

import json
import pathlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway
from tests.e2e.conftest import Stack
from tests.helpers.processes import free_port

pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)

REQUEST_TIMEOUT = 2.0
UPLOADS = 100


class Gateway:
    def __init__(self, http_port: int, admin_port: int) -> None:
        self.http_port = http_port
        self.admin_port = admin_port

    def stat(self, name: str) -> int:
        answer = httpx.get(f"http://127.0.0.1:{self.admin_port}/stats?filter=^{name}$")
        line = answer.text.strip()
        assert line.startswith(f"{name}: "), line
        return int(line.split(": ", 1)[1])


@pytest.fixture
def gateway(stack: Stack, tmp_path: pathlib.Path) -> Iterator[Gateway]:
    http_port, admin_port = free_port(), free_port()
    config = render_gateway(
        http_port=http_port,
        admin_port=admin_port,
        backends=stack.server.sockets,
        access_log=False,
        request_timeout_seconds=REQUEST_TIMEOUT,
    )
    envoy = start_envoy_sync(config, admin_port=admin_port, log_path=tmp_path / "envoy.log")
    try:
        yield Gateway(http_port, admin_port)
    finally:
        stop_envoy_sync(envoy)


def _head(method: str, path: str, length: int, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, dict[str, object], bytes]:
    """One HTTP/1.1 answer and whatever follows until the gateway closes the connection."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head, "no answer before the connection closed"
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body), received


def _reason(status_body: dict[str, object]) -> str:
    details = status_body["details"]
    assert isinstance(details, list)
    return str(details[0]["reason"])


def test_unauthenticated_uploads_are_refused_before_their_body_arrives(gateway: Gateway) -> None:
    socks = []
    started = time.monotonic()
    for index in range(UPLOADS):
        sock = socket.create_connection(("127.0.0.1", gateway.http_port), timeout=5)
        path = "/v1/customers" if index % 2 else "/customers"
        sock.sendall(_head("POST", path, 8192) + b"x" * 4096)  # 4 KiB short, never finished
        socks.append(sock)
    answers = []
    for sock in socks:
        with sock:
            answers.append(_answer(sock))  # the gateway answers and closes: no wait
    elapsed = time.monotonic() - started
    assert {status for status, _, _ in answers} == {401}
    assert {_reason(body) for _, body, _ in answers} == {"UNAUTHENTICATED"}
    assert elapsed < REQUEST_TIMEOUT * 3, elapsed  # answered, not timed out
    # None is still open or holding a body in the gateway.
    assert gateway.stat("http.rest.downstream_rq_active") == 0
    assert gateway.stat("http.rest.downstream_cx_active") == 0
    assert gateway.stat("http.rest.downstream_rq_4xx") == UPLOADS


def test_a_public_upload_may_come_without_a_token_but_must_arrive_in_time(
    gateway: Gateway,
) -> None:
    """POST /auth/token carries no token: it is not refused early, but a stalled body is
    cut at the request timeout with a JSON 408."""
    with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(_head("POST", "/auth/token", 100) + b'{"apiKey":')
        status, body, _ = _answer(sock)
        elapsed = time.monotonic() - started
    assert status == 408
    assert _reason(body) == "REQUEST_TIMEOUT"
    assert REQUEST_TIMEOUT * 0.9 < elapsed < REQUEST_TIMEOUT * 3, elapsed


def test_a_trickled_body_is_cut_at_the_request_timeout(gateway: Gateway) -> None:
    """A byte every 0.2 s keeps the idle timeout (300 s) from ever firing; the request
    timeout counts the whole request."""
    with socket.create_connection(("127.0.0.1", gateway.http_port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(_head("POST", "/customers", 8192, "Authorization: Bearer not-checked-yet"))
        sock.settimeout(0.2)
        received = b""
        while not received and time.monotonic() - started < REQUEST_TIMEOUT * 5:
            try:
                sock.send(b"x")
                received = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received[:80]
    assert b"REQUEST_TIMEOUT" in received
    assert REQUEST_TIMEOUT * 0.9 < elapsed < REQUEST_TIMEOUT * 3, elapsed
