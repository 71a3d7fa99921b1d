"""Starting the real server (a subprocess, as operators run it) and the real Envoy."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]
DESCRIPTOR = ROOT / "gen" / "customers.pb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, grpc_port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        CUSTOMERS_DATABASE_URL=database_url,
        CUSTOMERS_GRPC_PORT=str(grpc_port),
        CUSTOMERS_METRICS_PORT="0",
        CUSTOMERS_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        env=server_env(database_url, 0),
        cwd=ROOT,
        check=True,
    )


def wait_serving(address: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    env: dict[str, str] = field(repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def running_server(database_url: str, **extra_env: str) -> Iterator[ServerProcess]:
    port = free_port()
    env = server_env(database_url, port, **extra_env)
    process = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env, cwd=ROOT)
    try:
        wait_serving(f"127.0.0.1:{port}")
        yield ServerProcess(process, port, env)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
