"""grpc.aio server lifecycle: bind (returning the real port), health, reflection, stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from customers.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    customers_pb2,
    customers_pb2_grpc,
    simulator_pb2,
    simulator_pb2_grpc,
)
from server.bootstrap import Container, build
from server.config import Settings
from server.services.ports import Clock
from server.transport.accounts import AccountServicer, CardServicer
from server.transport.auth import AuthServicer
from server.transport.customers import CustomerServicer, SimulatorServicer

SERVICE_NAMES = [
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    customers_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name,
    accounts_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    accounts_pb2.DESCRIPTOR.services_by_name["CardService"].full_name,
    simulator_pb2.DESCRIPTOR.services_by_name["SimulatorService"].full_name,
]

MAX_MESSAGE_BYTES = 64 * 1024  # no request of ours comes near; refuse floods early


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    container: Container
    health: health.aio.HealthServicer

    async def stop(self, grace: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.container.engine.dispose()


async def start(settings: Settings, *, clock: Clock | None = None) -> RunningServer:
    """Builds and starts the server; `settings.grpc_port` 0 picks a free port."""
    container = await build(settings, clock=clock)
    server = grpc.aio.server(
        interceptors=container.interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1),
        ],
    )
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(container.auth), server)
    customers_pb2_grpc.add_CustomerServiceServicer_to_server(
        CustomerServicer(container.customers), server
    )
    simulator_pb2_grpc.add_SimulatorServiceServicer_to_server(
        SimulatorServicer(container.customers), server
    )
    accounts_pb2_grpc.add_AccountServiceServicer_to_server(
        AccountServicer(container.accounts), server
    )
    accounts_pb2_grpc.add_CardServiceServicer_to_server(CardServicer(container.accounts), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *SERVICE_NAMES]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    return RunningServer(server, port, container, health_servicer)


async def serve_until_signalled(running: RunningServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
