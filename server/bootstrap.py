"""Composition root: builds every adapter, use case, servicer and the interceptor chain
from Settings. Nothing else in the server constructs infrastructure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import grpc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from server.adapters.clock import SystemClock
from server.adapters.kyc import SandboxKyc
from server.adapters.screening import SandboxScreener
from server.adapters.tokens import JwtTokens
from server.adapters.wallet import EthereumWallets
from server.config import Settings
from server.interceptors.auth import PUBLIC_PREFIXES, AuthInterceptor
from server.interceptors.errors import ErrorsInterceptor
from server.interceptors.idempotency import IdempotencyInterceptor
from server.interceptors.request_context import RequestContextInterceptor
from server.services.accounts import AccountService
from server.services.auth import AuthService
from server.services.customers import ChallengeSettings, CustomerService
from server.services.kyc import KycService
from server.services.ports import Clock, KycProvider
from server.store.engine import make_engine
from server.store.idempotency import IdempotencyStore
from server.store.tables import ServerSecretRow
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.transport.http_rules import modifying_methods
from server.transport.services import SERVICES


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    auth: AuthService
    customers: CustomerService
    accounts: AccountService
    idempotency: IdempotencyStore
    clock: Clock
    interceptors: list[grpc.aio.ServerInterceptor]
    kyc: KycService
    kyc_portal: SandboxKyc | None  # the sandbox partner's pages; None when they are off


async def _token_secret(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(col(ServerSecretRow.value)).where(col(ServerSecretRow.name) == "token")
            )
        ).first()
    if row is None:
        raise RuntimeError("no token secret in the database: run `python -m server migrate`")
    return str(row[0])


def _kyc_provider(settings: Settings, clock: Clock) -> KycProvider:
    """The configured KYC partner. A real one is an adapter implementing KycProvider, chosen
    here by CUSTOMERS_KYC_PROVIDER (docs/KYC.md)."""
    match settings.kyc_provider:
        case "sandbox":
            return SandboxKyc(
                public_url=settings.public_url,
                webhook_secret=settings.kyc_webhook_secret.get_secret_value(),
                clock=clock,
            )


async def build(settings: Settings, *, clock: Clock | None = None) -> Container:
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url)
    uow = SqlUnitOfWorkFactory(engine)
    auth = AuthService(
        uow=uow,
        clock=clock,
        tokens=JwtTokens(await _token_secret(engine)),
        token_ttl=timedelta(seconds=settings.token_ttl_seconds),
    )
    kyc_provider = _kyc_provider(settings, clock)
    # Like the simulator, the sandbox portal would let anyone approve their own KYC: never
    # in production.
    sandbox_portal = kyc_provider if isinstance(kyc_provider, SandboxKyc) else None
    customers = CustomerService(
        uow=uow,
        clock=clock,
        wallets=EthereumWallets(),
        kyc=kyc_provider,
        screener=SandboxScreener(settings.screening_deny_list),
        challenge=ChallengeSettings(domain=settings.public_authority, uri=settings.public_url),
        sandbox=settings.env == "development",
    )
    accounts = AccountService(uow=uow, clock=clock)
    idempotency = IdempotencyStore(uow)
    interceptors: list[grpc.aio.ServerInterceptor] = [
        # Outermost: every call gets a request id, a log line and metrics, whatever happens.
        RequestContextInterceptor(),
        # Turns exceptions from everything below into rich statuses (and REST statuses).
        ErrorsInterceptor(),
        # Who is calling: the partner behind the bearer token.
        AuthInterceptor(auth),
        # Modifying calls run once per Idempotency-Key (per partner, so after auth).
        IdempotencyInterceptor(
            idempotency, clock, modifying_methods(SERVICES, exempt=PUBLIC_PREFIXES)
        ),
    ]
    return Container(
        settings,
        engine,
        auth,
        customers,
        accounts,
        idempotency,
        clock,
        interceptors,
        kyc=KycService(uow=uow, clock=clock, provider=kyc_provider),
        kyc_portal=sandbox_portal if settings.env == "development" else None,
    )
