"""The composition root: every adapter can be replaced, and each service is wired once."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from server.config import Settings
from server.rpc.services import INTERNAL_SERVICE_NAMES, SERVICE_NAMES
from tests.fakes import FakeUnitOfWorkFactory
from tests.fakes.world import fake_world


class _RecordingServer:
    """Takes what the generated add_*_to_server functions hand a grpc.aio server."""

    def __init__(self) -> None:
        self.services: list[str] = []

    def add_generic_rpc_handlers(self, handlers: tuple[Any, ...]) -> None:
        self.services.extend(handler.service_name() for handler in handlers)

    def add_registered_method_handlers(self, service: str, handlers: object) -> None:
        pass


async def test_every_service_is_registered_exactly_once() -> None:
    world = await fake_world()
    server = _RecordingServer()
    for registration in world.container.servicers:
        registration.register(server)  # type: ignore[arg-type]
    assert sorted(server.services) == sorted([*SERVICE_NAMES, *INTERNAL_SERVICE_NAMES])


async def test_the_overridden_unit_of_work_is_the_one_every_use_case_uses() -> None:
    uow = FakeUnitOfWorkFactory()
    world = await fake_world(uow=uow)
    assert world.container.uow is uow
    partner = world.partner()
    created = await world.container.customers.create(
        partner_id=partner, chain_id=f"eip155:1:0x{'ab' * 20}", external_id="x"
    )
    assert created.customer.id in uow.tables.customers
    assert uow.made and all(made.write or not made.committed for made in uow.made)


def test_the_environment_is_decided_once_in_settings() -> None:
    development = Settings(metrics_port=0)
    production = Settings(
        env="production", kyc_webhook_secret=SecretStr("a-production-secret-value")
    )
    assert (development.production, development.sandbox) == (False, True)
    assert (production.production, production.sandbox) == (True, False)
