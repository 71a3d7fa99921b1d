"""Composition root: builds every adapter, use case, servicer and the interceptor chain
from Settings. Nothing else in the server constructs infrastructure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import grpc
from sqlalchemy import select
from sqlmodel import col
from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.clock import SystemClock
from server.adapters.kyc import SandboxKyc
from server.adapters.screening import SandboxScreener
from server.adapters.tokens import JwtTokens
from server.adapters.wallet import EthereumWallets
from server.config import Settings
from server.interceptors.auth import AuthInterceptor
from server.interceptors.errors import ErrorsInterceptor
from server.interceptors.request_context import RequestContextInterceptor
from server.services.accounts import AccountService
from server.services.auth import AuthService
from server.services.customers import ChallengeSettings, CustomerService
from server.services.ports import Clock
from server.store.engine import make_engine
from server.store.tables import ServerSecretRow
from server.store.unit_of_work import SqlUnitOfWorkFactory


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    auth: AuthService
    customers: CustomerService
    accounts: AccountService
    interceptors: list[grpc.aio.ServerInterceptor]


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
    customers = CustomerService(
        uow=uow,
        clock=clock,
        wallets=EthereumWallets(),
        kyc=SandboxKyc(settings.public_url),
        screener=SandboxScreener(settings.screening_deny_list),
        challenge=ChallengeSettings(domain=settings.public_authority, uri=settings.public_url),
        sandbox=settings.env == "development",
    )
    accounts = AccountService(uow=uow, clock=clock)
    interceptors: list[grpc.aio.ServerInterceptor] = [
        # Outermost: every call gets a request id, a log line and metrics, whatever happens.
        RequestContextInterceptor(),
        # Turns exceptions from everything below into rich statuses (and REST statuses).
        ErrorsInterceptor(),
        # Who is calling: the partner behind the bearer token.
        AuthInterceptor(auth),
    ]
    return Container(settings, engine, auth, customers, accounts, interceptors)
