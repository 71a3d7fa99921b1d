"""The unit of work's commit hooks, on SQLite and PostgreSQL: `after_commit` runs only once
the transaction has really committed (for an idempotent request, when the call's
IdempotentWrite commits it with the stored answer), so a memo forgotten there cannot be
refilled with the old state by a read in between; `credentials_changed` is a PostgreSQL
NOTIFY sent only on commit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
import pytest

from client.signing import generate_key, public_key_b64
from server.bootstrap import build
from server.config import Settings
from server.domain.errors import Unauthenticated
from server.services.auth import AuthService
from server.services.signing_keys import SigningKeyService
from server.store.idempotency import IdempotencyStore, IdempotentWrite, StoredAnswer, Ticket
from server.store.unit_of_work import CREDENTIALS_CHANNEL, SqlUnitOfWorkFactory
from server.transport import convert
from tests.helpers.clock import SteppingClock
from tests.helpers.databases import postgres_database


@dataclass
class Services:
    uow: SqlUnitOfWorkFactory
    auth: AuthService
    keys: SigningKeyService
    idempotency: IdempotencyStore


@asynccontextmanager
async def built(database_url: str) -> AsyncIterator[Services]:
    """The server's services as bootstrap wires them; no listener runs (on PostgreSQL this
    process hears no notifications), so only the unit of work's hooks forget."""
    container = await build(
        Settings(database_url=database_url, metrics_port=0), clock=SteppingClock()
    )
    try:
        uow = SqlUnitOfWorkFactory(
            container.engine, inline=container.read_engine, shape=convert.payload
        )
        yield Services(uow, container.auth, container.signing_keys, container.idempotency)
    finally:
        await container.close()


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[Services]:
    async with built(database_url) as made:
        yield made


async def test_after_commit_runs_on_commit_and_never_on_rollback(services: Services) -> None:
    ran: list[str] = []
    async with services.uow(write=True) as uow:
        uow.after_commit(lambda: ran.append("committed"))
        assert ran == []
        await uow.commit()
    async with services.uow(write=True) as uow:
        uow.after_commit(lambda: ran.append("rolled back"))
    assert ran == ["committed"]


def _owned(services: Services, partner_id: uuid.UUID) -> IdempotentWrite:
    """What the idempotency interceptor holds while an idempotent request runs."""
    ticket = Ticket(partner_id, uuid.uuid4(), "fingerprint", SteppingClock().now())
    return services.idempotency.write(ticket)


async def _finish(write: IdempotentWrite, *, commit: bool) -> None:
    if commit:
        await write.complete(StoredAnswer(0, None, b""))
    else:
        await write.abort()


async def test_a_read_while_a_key_registration_awaits_its_answer_is_not_remembered(
    services: Services,
) -> None:
    partner = await services.auth.create_partner("test")

    async def register() -> IdempotentWrite:  # its own context, as a request has
        write = _owned(services, partner.partner_id)
        with write.bound():
            key = public_key_b64(generate_key())
            await services.keys.register(partner_id=partner.partner_id, public_key=key)
        return write

    claim = await asyncio.create_task(register())
    # Another request, before the registration's transaction commits with its answer.
    assert await services.keys.live(partner_id=partner.partner_id) == []
    await _finish(claim, commit=True)
    assert len(await services.keys.live(partner_id=partner.partner_id)) == 1


async def test_a_read_while_a_rotation_awaits_its_answer_does_not_keep_the_old_token(
    services: Services,
) -> None:
    partner = await services.auth.create_partner("test")
    old = await services.auth.issue_token(
        api_key=str(partner.api_key), api_secret=partner.api_secret
    )

    async def rotate() -> IdempotentWrite:
        write = _owned(services, partner.partner_id)
        with write.bound():
            await services.auth.rotate_credentials(partner_id=partner.partner_id)
        return write

    claim = await asyncio.create_task(rotate())
    assert await services.auth.authenticate(old.token) == partner.partner_id  # not yet
    await _finish(claim, commit=True)
    with pytest.raises(Unauthenticated):
        await services.auth.authenticate(old.token)


async def test_a_change_rolled_back_after_its_answer_failed_forgets_nothing(
    services: Services,
) -> None:
    partner = await services.auth.create_partner("test")
    remembered = await services.keys.live(partner_id=partner.partner_id)

    async def register() -> IdempotentWrite:
        write = _owned(services, partner.partner_id)
        with write.bound():
            key = public_key_b64(generate_key())
            await services.keys.register(partner_id=partner.partner_id, public_key=key)
        return write

    claim = await asyncio.create_task(register())
    await _finish(claim, commit=False)
    assert await services.keys.live(partner_id=partner.partner_id) is remembered


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


async def test_credential_changes_notify_on_commit_only(pg_url: str) -> None:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    async with built(pg_url) as services:
        auth, keys = services.auth, services.keys
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listening:
            await listening.execute(f"LISTEN {CREDENTIALS_CHANNEL}")
            partner = await auth.create_partner("test")  # new: nothing to forget, no NOTIFY
            registered = await keys.register(
                partner_id=partner.partner_id, public_key=public_key_b64(generate_key())
            )
            await keys.delete(partner_id=partner.partner_id, key_id=registered.key.key_id)
            await auth.rotate_credentials(partner_id=partner.partner_id)
            other = await auth.create_partner("rolled back")

            async def rotate_other() -> IdempotentWrite:  # sent, then rolled back
                write = _owned(services, other.partner_id)
                with write.bound():
                    await auth.rotate_credentials(partner_id=other.partner_id)
                return write

            await _finish(await asyncio.create_task(rotate_other()), commit=False)
            payloads = []
            async for notification in listening.notifies(timeout=0.5, stop_after=4):
                assert notification.channel == CREDENTIALS_CHANNEL
                payloads.append(notification.payload)
        assert payloads == [str(partner.partner_id)] * 3
