"""grpc.aio server lifecycle: bind (returning the real port), health, reflection, stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import stat
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server.bootstrap import Container, build
from server.config import Settings
from server.rpc.services import INTERNAL_SERVICE_NAMES, SERVICE_NAMES
from server.services.ports import Clock

__all__ = ["SERVICE_NAMES", "RunningServer", "serve_until_signalled", "start"]

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024  # no request of ours comes near; refuse floods early
# Metadata (headers) a call may carry. grpc-core's defaults (8 KiB soft, 16 KiB hard, with
# random rejections in between) are below what Envoy accepts and forwards: a client's 32 KiB
# of headers (gateway/config.py) plus the forwarded target and base64 body (up to 88 KiB).
# Soft and hard limits are equal, so the outcome is never random.
MAX_METADATA_BYTES = 256 * 1024
# Calls that arrived but the server has not taken up yet (a burst of stream reconnects).
MAX_PENDING_CALLS = 20_000


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int  # the TCP port: public plain gRPC, or with gRPC TLS the internal mTLS port
    gateway_socket: str  # the Unix socket Envoy reaches this worker on
    container: Container
    health: health.aio.HealthServicer
    tasks: list[asyncio.Task[None]]

    async def stop(self, grace: float = 2.0) -> None:
        for task in self.tasks:
            task.cancel()
        # Let them finish unwinding (the webhook worker hands back its unfinished
        # deliveries) before the database goes away.
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=grace + 1.0)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.container.close()


def grpc_server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS for the worker's internal port, requiring a client certificate from the client
    CA; None for the plain port of development. grpcio's Python API offers "require and
    verify" or "do not request" only (no "request but do not require"), so the public port,
    where a certificate is optional, is Envoy's (gateway/tls.py), and this port is its hop:
    Envoy presents its own certificate and forwards the client's verified identity
    (interceptors/peer_identity.py; docs/DECISIONS.md, "TLS at the edge")."""
    if not settings.grpc_tls:
        return None
    assert settings.grpc_tls_key_file and settings.grpc_tls_cert_file
    assert settings.grpc_client_ca_file
    key = pathlib.Path(settings.grpc_tls_key_file).read_bytes()
    chain = pathlib.Path(settings.grpc_tls_cert_file).read_bytes()
    client_ca = pathlib.Path(settings.grpc_client_ca_file).read_bytes()
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=True
    )


def prepare_socket_dir(path: str) -> None:
    """The gateway sockets' directory: created 0700, and refused if anyone but this user
    could enter it (a call over a socket in it is trusted to come through the gateway)."""
    folder = pathlib.Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise RuntimeError(
            f"gateway socket directory {folder} must be owned by this user with mode 0700"
        )


async def start(
    settings: Settings, *, clock: Clock | None = None, worker: int = 0
) -> RunningServer:
    """Builds and starts one worker; `settings.grpc_port` 0 picks a free port (one worker)."""
    socket_path = settings.gateway_socket(worker)
    prepare_socket_dir(os.path.dirname(socket_path))
    container = await build(settings, clock=clock)
    server = grpc.aio.server(
        interceptors=container.interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            # Plain gRPC: workers share the TCP port; the kernel spreads connections over
            # them. With gRPC TLS each worker has its own internal port (Envoy spreads calls
            # over them): a second process on one fails to start instead of sharing it.
            ("grpc.so_reuseport", 0 if settings.grpc_tls else 1),
            # grpc core cancels calls that wait to be picked up beyond 1,000 (soft, randomly)
            # or 3,000 (hard). grpc.aio picks them up one at a time, so a reconnect storm of
            # a few thousand WatchCustomers streams got CANCELLED before any of our code ran.
            ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
            ("grpc.server.max_pending_requests_hard_limit", 2 * MAX_PENDING_CALLS),
        ],
    )
    for registration in container.servicers:
        registration.register(server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *SERVICE_NAMES, *INTERNAL_SERVICE_NAMES]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*SERVICE_NAMES, *INTERNAL_SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME],
        server,
    )
    # Development: plain native gRPC on the public port. With gRPC TLS the public port is
    # Envoy's, and this worker serves its own internal mTLS port behind it.
    tcp_port = settings.internal_grpc_port(worker) if settings.grpc_tls else settings.grpc_port
    address = f"{settings.grpc_host}:{tcp_port}"
    credentials = grpc_server_credentials(settings)
    port = (
        server.add_insecure_port(address)
        if credentials is None
        else server.add_secure_port(address, credentials)
    )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)  # left behind by a worker that was killed
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()
    tasks = [
        asyncio.create_task(_sweep_idempotency_keys(container)),
        asyncio.create_task(_prune_old_rows(container)),
        *(asyncio.create_task(run()) for run in container.background),
    ]
    return RunningServer(server, port, socket_path, container, health_servicer, tasks)


async def _sweep_idempotency_keys(container: Container, every: float = 60.0) -> None:
    """Expired keys are never replayed anyway (the claim checks expiry); this keeps the
    table small."""
    while True:
        await asyncio.sleep(every)
        try:
            await container.idempotency.sweep(container.clock.now())
        except Exception:  # a failed sweep is retried next round
            log.exception("idempotency sweep failed")


async def _prune_old_rows(container: Container) -> None:
    """Retention (store/retention.py): every worker prunes each interval; their rounds
    share the work (SKIP LOCKED on PostgreSQL, the write lock on SQLite)."""
    pruner, every = container.retention, container.settings.retention_interval_seconds
    while True:
        await asyncio.sleep(every)
        try:
            pruned = await pruner.prune(container.clock.now())
        except Exception:  # a failed round is retried next round
            log.exception("retention pruning failed")
            continue
        if pruned.events or pruned.deliveries:
            log.info(
                "old rows pruned",
                events=pruned.events,
                deliveries=pruned.deliveries,
                transactions=pruned.transactions,
            )


async def serve_until_signalled(running: RunningServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
