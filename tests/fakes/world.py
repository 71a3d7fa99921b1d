"""The server as bootstrap wires it, over fakes only: no database, network or gRPC."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from server.bootstrap import Container, build
from server.config import Settings
from server.domain.partner import Partner
from server.store.nonces import MemoryNonceRegistry
from tests.fakes.providers import (
    START,
    FakeKyc,
    FakeScreener,
    FakeTokens,
    FakeWallets,
    FixedClock,
    fake_key_parser,
)
from tests.fakes.unit_of_work import FakeUnitOfWorkFactory


def fake_settings(**values: Any) -> Settings:
    """An in-memory SQLite URL: the SQL engines bootstrap still makes are never used."""
    defaults: dict[str, Any] = {
        "database_url": "sqlite+aiosqlite:///:memory:",
        "metrics_port": 0,
        "workers": 1,
        "rate_limit_per_second": 0,
    }
    return Settings(**{**defaults, **values})


@dataclass
class FakeWorld:
    container: Container
    uow: FakeUnitOfWorkFactory
    clock: FixedClock
    kyc: FakeKyc
    screener: FakeScreener
    wallets: FakeWallets
    partners: list[UUID] = field(default_factory=list)

    def partner(self) -> UUID:
        """A partner in the store (the services never ask for one; the auth step does)."""
        partner = Partner(
            id=uuid.uuid4(),
            name=f"partner-{len(self.partners)}",
            api_key=uuid.uuid4(),
            secret_hash="",
            credentials_version=1,
            created_at=START,
        )
        self.uow.tables.partners[partner.id] = partner
        self.partners.append(partner.id)
        return partner.id


async def fake_world(settings: Settings | None = None, **overrides: Any) -> FakeWorld:
    """`bootstrap.build` with every adapter a fake; `overrides` replace any of them."""
    adapters: dict[str, Any] = {
        "clock": FixedClock(),
        "uow": FakeUnitOfWorkFactory(),
        "tokens": FakeTokens(),
        "kyc": FakeKyc(),
        "screener": FakeScreener(),
        "wallets": FakeWallets(),
        "parse_key": fake_key_parser,
        "nonces": MemoryNonceRegistry(),
        **overrides,
    }
    container = await build(settings or fake_settings(), **adapters)
    return FakeWorld(
        container,
        adapters["uow"],
        adapters["clock"],
        adapters["kyc"],
        adapters["screener"],
        adapters["wallets"],
    )
