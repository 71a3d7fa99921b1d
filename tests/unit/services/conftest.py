"""Service-layer tests: the use cases as bootstrap wires them, over tests/fakes/ only."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from server.domain.accounts import Account, AccountType
from server.domain.customer import Customer
from tests.fakes.world import FakeWorld, fake_world


@pytest.fixture
async def world() -> AsyncIterator[FakeWorld]:
    made = await fake_world()
    try:
        yield made
    finally:
        await made.container.close()


def new_chain_id() -> str:
    """An eip155 CAIP-10 id for a fresh (all lower-case, so checksum-free) address."""
    return f"eip155:1:0x{secrets.token_hex(20)}"


async def signed_customer(world: FakeWorld, partner_id: UUID) -> Customer:
    """A customer whose wallet signed its challenge (screening passed: verifying)."""
    customers = world.container.customers
    chain_id = new_chain_id()
    created = await customers.create(partner_id=partner_id, chain_id=chain_id, external_id=chain_id)
    await customers.sign_challenge(
        partner_id=partner_id,
        customer_id=str(created.customer.id),
        signature=signature(world, created.challenge, chain_id),
        signer=chain_id,
        challenge=created.challenge,
    )
    return await customers.get(partner_id=partner_id, customer_id=str(created.customer.id))


async def active_customer(world: FakeWorld, partner_id: UUID) -> Customer:
    customer = await signed_customer(world, partner_id)
    await world.container.customers.simulate_kyc(
        partner_id=partner_id, customer_id=str(customer.id), approved=True
    )
    return await world.container.customers.get(partner_id=partner_id, customer_id=str(customer.id))


def signature(world: FakeWorld, challenge_b64: str, chain_id: str) -> str:
    """The wallet's answer to a challenge, as the API takes it (base64)."""
    text = base64.b64decode(challenge_b64).decode()
    address = chain_id.rsplit(":", 1)[1]
    return base64.b64encode(world.wallets.sign(text, address)).decode()


async def euro_card_account(world: FakeWorld, partner_id: UUID, customer: Customer) -> Account:
    """A card account in EUR for `customer`: the account most rules here start from."""
    return await world.container.accounts.create_account(
        partner_id=partner_id,
        customer_id=str(customer.id),
        type=AccountType.CARD_ACCOUNT,
        currencies=["EUR"],
    )
