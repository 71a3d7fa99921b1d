"""Starting the real server (a subprocess, as operators run it) and the real Envoy."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import tempfile
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
        CUSTOMERS_WORKERS="1",
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


def wait_serving(
    address: str,
    credentials: grpc.ChannelCredentials | None = None,
    timeout: float = 20.0,
    *,
    process: subprocess.Popen[bytes] | None = None,
    log: pathlib.Path | None = None,
) -> None:
    """Until the gRPC health check at `address` answers SERVING (over TLS with
    `credentials`). With `process`, its exit ends the wait at once, quoting `log`'s tail.
    (bench/ waits for its servers with this one loop too.)"""
    deadline = time.monotonic() + timeout
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(address, credentials)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process is not None and process.poll() is not None:
                lines = log.read_text(errors="replace").splitlines()[-25:] if log else []
                tail = "\n".join(lines)
                raise RuntimeError(f"server exited with {process.returncode}:\n{tail}")
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
    """`python -m server serve`: one worker, or a supervisor and its workers."""

    process: subprocess.Popen[bytes]
    port: int  # the native gRPC port every worker shares
    sockets: list[str]  # the workers' gateway sockets, Envoy's backends
    env: dict[str, str] = field(repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
        self.process.kill()
        self.process.wait()

    def start_again(self) -> None:
        """The same command on the same ports and sockets, as a supervisor restarts it."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"], env=self.env, cwd=ROOT
        )
        for path in self.sockets:
            wait_serving(f"unix:{path}")


@contextmanager
def running_server(
    database_url: str, *, workers: int = 1, **extra_env: str
) -> Iterator[ServerProcess]:
    port = free_port()
    # Short and private: Unix socket paths are limited to 107 bytes.
    socket_dir = tempfile.mkdtemp(prefix="cust-")
    env = server_env(
        database_url,
        port,
        CUSTOMERS_WORKERS=str(workers),
        CUSTOMERS_GATEWAY_SOCKET_DIR=socket_dir,
        **extra_env,
    )
    sockets = [os.path.join(socket_dir, f"worker-{index}.sock") for index in range(workers)]
    process = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env, cwd=ROOT)
    server = ServerProcess(process, port, sockets, env)
    try:
        for path in sockets:
            wait_serving(f"unix:{path}")
        yield server
    finally:
        process = server.process  # a test may have killed and started it again
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
