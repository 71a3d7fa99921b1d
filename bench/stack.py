"""The real stack for a bench: a migrated database, `python -m server serve` as a subprocess
and Envoy in front of it, the way operators and the e2e tests run them. Kept apart from
tests/ on purpose: the bench must not depend on test helpers.

Every authenticated call is signed (RFC 9421) with the partner SDK (`client.signing`): a
partner gets a token, registers its first key with the token alone, and signs from then on.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pathlib
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from client.idempotency import new_key
from client.signing import PrivateSigningKey, SigningAuth, generate_key, public_key_b64
from gateway.process import start_envoy_sync, stop_envoy_sync
from server.edge import render_gateway
from server.store.migrate import upgrade
from tests.helpers.processes import free_port, server_env, wait_serving

if TYPE_CHECKING:
    from tests.helpers.partners import PartnerCredentials

ROOT = pathlib.Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("CUSTOMERS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


@dataclass(frozen=True)
class Stack:
    """Running processes and where to reach them."""

    database_url: str
    server: subprocess.Popen[bytes]  # `python -m server serve`: the worker, or the supervisor
    grpc_port: int
    envoy: subprocess.Popen[bytes]
    http_port: int
    folder: pathlib.Path
    workers: int = 1

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def base_url(self) -> str:
        """Also the server's CUSTOMERS_PUBLIC_URL."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def authority(self) -> str:
        """RFC 9421 `@authority` of every signed call: REST (the Host wrk and httpx send) and
        native gRPC (which the server checks against CUSTOMERS_PUBLIC_URL)."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def kind(self) -> str:
        return "postgresql" if self.database_url.startswith("postgresql") else "sqlite"

    def processes(self) -> dict[str, list[int]]:
        """Who serves a request, by role. With PostgreSQL the database's work happens in its
        backends, so they count as a role of their own ("db"); SQLite runs in the server."""
        roles = {"server": [self.server.pid, *children(self.server.pid)], "envoy": [self.envoy.pid]}
        if self.database_url.startswith("postgresql"):
            roles["db"] = postgres_backends(self.database_url.rsplit("/", 1)[1])
        return roles


def children(pid: int) -> list[int]:
    """A process's child pids (a supervisor's workers)."""
    try:
        text = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def postgres_backends(database_name: str) -> list[int]:
    """Backend pids connected to one database (the server's pool), not the whole cluster:
    other sessions on this machine may be using the same PostgreSQL."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database_name,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def postgres_unavailable() -> str | None:
    """None when the bench's PostgreSQL answers, else why not (the PostgreSQL part is then
    skipped with that message, not failed)."""
    import psycopg

    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return f"PostgreSQL at {PG_SERVER} unavailable ({str(error).strip()[:120]})"


@contextlib.contextmanager
def database(kind: str, folder: pathlib.Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, or a throwaway PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        upgrade(url)
        yield url
        return
    import psycopg

    name = f"customers_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg://{PG_SERVER.split('://', 1)[1]}/{name}"
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_server(
    database_url: str, folder: pathlib.Path, public_url: str, workers: int = 1
) -> Iterator[tuple[Any, int, list[str]]]:
    port = free_port()
    socket_dir = tempfile.mkdtemp(prefix="cust-bench-")  # short: Unix socket path limit
    sockets = [os.path.join(socket_dir, f"worker-{index}.sock") for index in range(workers)]
    env = server_env(
        database_url,
        port,
        # The gateway's address: native gRPC signatures are checked against its host:port.
        CUSTOMERS_PUBLIC_URL=public_url,
        CUSTOMERS_WORKERS=str(workers),
        CUSTOMERS_GATEWAY_SOCKET_DIR=socket_dir,
    )
    log_path = folder / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        for path in sockets:
            wait_serving(f"unix:{path}", timeout=30.0, process=process, log=log_path)
        yield process, port, sockets
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_stack(kind: str, folder: pathlib.Path, workers: int = 1) -> Iterator[Stack]:
    """Database, server workers and Envoy (no access log, as in the e2e tests)."""
    # The gateway's port first: the server must know its public URL.
    http_port, admin_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{http_port}"
    with (
        database(kind, folder) as url,
        running_server(url, folder, public_url, workers) as (server, grpc_port, sockets),
    ):
        config = render_gateway(
            http_port=http_port, admin_port=admin_port, backends=sockets, access_log=False
        )
        envoy = start_envoy_sync(
            config, admin_port=admin_port, log_path=folder / "envoy.log", log_level="warning"
        )
        try:
            yield Stack(url, server, grpc_port, envoy, http_port, folder, workers)
        finally:
            stop_envoy_sync(envoy)


def create_partner(database_url: str) -> PartnerCredentials:
    """Through the same use case as `python -m server partners create`: the tests' helper
    (imported here, not at the top: it builds the whole server)."""
    from tests.helpers.partners import create_partner as made_by_tests

    return made_by_tests(database_url, f"bench-{uuid.uuid4().hex[:8]}")


class SignedPartner:
    """A partner speaking REST to Envoy with one signing key, as the SDK does: a token,
    the first key registered with the token alone, every later call signed (with a nonce)."""

    def __init__(self, http: httpx.Client, partner: PartnerCredentials, algorithm: str) -> None:
        self.http = http
        self.partner = partner
        answer = http.post(
            "/auth/token", json={"apiKey": partner.api_key, "apiSecret": partner.api_secret}
        )
        _expect(answer, 200)
        self.token: str = answer.json()["token"]
        self.key: PrivateSigningKey = generate_key(algorithm)
        registered = http.put(
            "/auth/signing",
            json={"publicKey": public_key_b64(self.key)},
            headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": new_key()},
        )
        _expect(registered, 201)
        if registered.json()["keyId"] != self.key.key_id:
            raise RuntimeError(f"keyId {registered.json()['keyId']} != {self.key.key_id}")
        self.auth = SigningAuth(self.key)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            # The API requires an Idempotency-Key (a UUID) on every modifying request.
            headers.setdefault("Idempotency-Key", new_key())
        return self.http.request(method, path, headers=headers, auth=self.auth, **kwargs)

    def new_customer(self) -> tuple[dict[str, Any], Any]:
        """A fresh customer (status pending its wallet proof) and the wallet it names."""
        from eth_account import Account

        wallet = Account.create()
        created = self.call(
            "POST",
            "/customers",
            json={"chainId": f"eip155:1:{wallet.address}", "externalId": wallet.address},
        )
        _expect(created, 201)
        return dict(created.json()), wallet

    def active_customer(self) -> dict[str, Any]:
        """Create, prove wallet ownership (SIWE personal_sign), pass sandbox KYC."""
        body, wallet = self.new_customer()
        _text, signature = signed_challenge(wallet, body["challenge"])
        signed = self.call(
            "POST",
            f"/customers/{body['id']}/challenge/sign",
            json={
                "signature": base64.b64encode(signature).decode(),
                "signer": body["chainId"],
                "challenge": body["challenge"],
            },
        )
        _expect(signed, 204)
        _expect(self.call("PATCH", f"/simulator/customers/{body['id']}/verify"), 202)
        customer = self.call("GET", f"/customers/{body['id']}")
        _expect(customer, 200)
        if customer.json()["status"] != "active":
            raise RuntimeError(f"customer not active after KYC: {customer.text}")
        return dict(customer.json())


def signed_challenge(wallet: Any, challenge_b64: str) -> tuple[str, bytes]:
    """The challenge text the server issued and the wallet's personal_sign of it."""
    from eth_account.messages import encode_defunct

    text = base64.b64decode(challenge_b64).decode()
    return text, bytes(wallet.sign_message(encode_defunct(text=text)).signature)


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"expected {status}, got {response.status_code}: {response.text}"
        )
