"""Several worker processes per machine (`CUSTOMERS_WORKERS`), each with its own event loop.

The supervisor starts `python -m server worker N` for N in 0..workers-1. Every worker binds
the same gRPC port (SO_REUSEPORT: the kernel spreads native gRPC connections over them) and
its own gateway socket, which Envoy lists as one endpoint each. A worker that dies is
started again; SIGINT/SIGTERM stops them all. One worker runs in-process, unsupervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

import structlog

from gateway.lifetime import die_with_parent
from server.config import Settings

log = structlog.get_logger(__name__)

RESTART_DELAY_SECONDS = 1.0
STOP_GRACE_SECONDS = 8.0  # under the 10 s most process managers wait before SIGKILL


def pick_port(host: str) -> int:
    """A free port for `grpc_port` 0: every worker must bind the same one."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def supervise(
    settings: Settings, *, ready: Callable[[Settings], Awaitable[None]] | None = None
) -> None:
    """Runs the workers until SIGINT/SIGTERM. `ready(settings)` is awaited once they are
    all serving (for `dev`, which then starts Envoy), with the ports they really use."""
    port = settings.grpc_port or pick_port(settings.grpc_host)
    env = {**os.environ, "CUSTOMERS_GRPC_PORT": str(port)}
    internal = settings.grpc_internal_port
    if settings.grpc_tls and not internal:
        internal = pick_port(settings.grpc_host)  # worker N takes the ports after it
        env["CUSTOMERS_GRPC_INTERNAL_PORT"] = str(internal)
    resolved = settings.model_copy(update={"grpc_port": port, "grpc_internal_port": internal})
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)

    async def spawn(index: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "worker",
            str(index),
            env=env,
            # If the supervisor dies, even by SIGKILL, the kernel sends the worker SIGTERM
            # (Linux), so no worker outlives it holding the port. Safe: no threads here.
            preexec_fn=die_with_parent,
        )

    processes = [await spawn(index) for index in range(settings.workers)]
    await wait_all_serving(settings.gateway_sockets())
    if settings.grpc_tls:
        ports = ", ".join(str(p) for _, p in resolved.internal_grpc_addresses())
        print(f"gRPC internal mTLS ports {settings.grpc_host}: {ports}", flush=True)
    else:
        print(
            f"gRPC listening on {settings.grpc_host}:{port} ({settings.workers} workers)",
            flush=True,
        )
    if ready is not None:
        await ready(resolved)

    async def keep(index: int) -> None:
        while not stopping.is_set():
            code = await processes[index].wait()
            if stopping.is_set():
                return
            log.error("worker exited; starting it again", worker=index, code=code)
            await asyncio.sleep(RESTART_DELAY_SECONDS)
            processes[index] = await spawn(index)

    keepers = [asyncio.create_task(keep(index)) for index in range(settings.workers)]
    await stopping.wait()
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(p.wait() for p in processes)), timeout=STOP_GRACE_SECONDS
        )
    except TimeoutError:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    for keeper in keepers:
        keeper.cancel()


async def wait_all_serving(sockets: list[str], within: float = 30.0) -> None:
    """Until every worker's gateway socket answers the gRPC health check with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with asyncio.timeout(within):
        for path in sockets:
            async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while True:
                    with contextlib.suppress(grpc.RpcError):
                        answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                        if answer.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    await asyncio.sleep(0.1)
