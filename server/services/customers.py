"""Customer use cases: onboarding, reads, deactivation and activation with their cascade."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from server.domain import accounts as cascade
from server.domain import siwe
from server.domain.accounts import Account, Card
from server.domain.customer import Customer, CustomerStatus, KycVerdict
from server.domain.errors import (
    ChallengeAlreadySigned,
    ChallengeExpired,
    ChallengeRejected,
    CustomerAlreadyExists,
    CustomerNotFound,
    InvalidField,
    SandboxOnly,
    UnsupportedChain,
)
from server.domain.identifiers import (
    InvalidIdentifier,
    parse_account_id,
    parse_id,
    validate_external_id,
)
from server.services.paging import Page, decode_cursor, encode_cursor, page_size
from server.services.ports import (
    Clock,
    CustomerRepository,
    KycProvider,
    Screener,
    UnitOfWork,
    UnitOfWorkFactory,
    Wallets,
)


@dataclass(frozen=True)
class CreatedCustomer:
    customer: Customer
    challenge: str  # base64 of the EIP-4361 message
    verification_url: str


@dataclass(frozen=True)
class CurrentChallenge:
    challenge: str  # base64
    expires_at: datetime


@dataclass(frozen=True)
class ChallengeSettings:
    """Where the SIWE message says the user signs in: the service's public host."""

    domain: str
    uri: str


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _b64decode(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField(field, f"{field} must be base64") from None


# deactivate_customer / activate_customer: True when anything changed.
CascadeRule = Callable[[Customer, list[Account], list[Card], datetime], bool]


def _unsupported(chain_id: str) -> UnsupportedChain:
    namespace = chain_id.split(":", 1)[0]
    return UnsupportedChain(
        f"Wallets in the '{namespace}' namespace cannot sign the ownership challenge yet; "
        "only eip155 (Ethereum) accounts can complete onboarding"
    )


class CustomerService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        wallets: Wallets,
        kyc: KycProvider,
        screener: Screener,
        challenge: ChallengeSettings,
        sandbox: bool,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._wallets = wallets
        self._kyc = kyc
        self._screener = screener
        self._challenge = challenge
        self._sandbox = sandbox

    async def create(self, *, partner_id: UUID, chain_id: str, external_id: str) -> CreatedCustomer:
        try:
            account = parse_account_id(chain_id)
        except InvalidIdentifier as exc:
            raise InvalidField("chainId", str(exc)) from None
        try:
            external_id = validate_external_id(external_id)
        except InvalidIdentifier as exc:
            raise InvalidField("externalId", str(exc)) from None
        now = self._clock.now()
        customer = Customer(
            id=uuid.uuid4(),
            partner_id=partner_id,
            external_id=external_id,
            chain_id=str(account),
            chain_key=account.canonical,
            status=CustomerStatus.INITIATING,
            created_at=now,
            updated_at=now,
        )
        # The KYC partner is called outside any write transaction, so a slow partner never
        # holds the write lock; a duplicate caught before the call costs it nothing.
        async with self._uow() as uow:
            duplicate = await uow.customers.find_duplicate(
                partner_id=partner_id, chain_key=customer.chain_key, external_id=external_id
            )
        if duplicate:
            raise CustomerAlreadyExists(duplicate)
        session = await self._kyc.open_session(partner_id=partner_id, customer_id=customer.id)
        customer.kyc_session_id = session.session_id
        self._issue_challenge(customer, now)
        async with self._uow(write=True) as uow:
            # A create that raced this one since the check loses on the unique indexes.
            await uow.customers.add(customer)
            await uow.commit()
        return CreatedCustomer(customer, _b64(customer.challenge_message), session.verification_url)

    async def get(self, *, partner_id: UUID, customer_id: str) -> Customer:
        async with self._uow() as uow:
            return await self._load(uow.customers, partner_id, customer_id)

    async def list(
        self,
        *,
        partner_id: UUID,
        size: int,
        token: str,
        status: CustomerStatus | None,
        external_id: str | None,
    ) -> Page[Customer]:
        limit = page_size(size)
        after = decode_cursor(token)
        async with self._uow() as uow:
            rows = await uow.customers.list(
                partner_id=partner_id,
                limit=limit + 1,
                after=after,
                status=status,
                external_id=external_id,
            )
        return Page.of(rows, limit, lambda c: encode_cursor(c.created_at, c.id))

    async def deactivate(self, *, partner_id: UUID, customer_id: str) -> Customer:
        return await self._switch(partner_id, customer_id, cascade.deactivate_customer)

    async def activate(self, *, partner_id: UUID, customer_id: str) -> Customer:
        return await self._switch(partner_id, customer_id, cascade.activate_customer)

    async def _switch(self, partner_id: UUID, customer_id: str, rule: CascadeRule) -> Customer:
        """The customer and everything it owns, changed by `rule` in one transaction."""
        async with self._uow(write=True) as uow:
            customer = await self._load(uow.customers, partner_id, customer_id, for_update=True)
            # After the customer's lock, in a statement of its own: it must see what the
            # transaction it waited for committed.
            accounts, cards = await uow.accounts.with_cards(
                partner_id=partner_id, customer_id=customer.id
            )
            if rule(customer, accounts, cards, self._clock.now()):
                await _save_changed(uow, customer, accounts, cards)
                await uow.commit()
            return customer

    async def current_challenge(self, *, partner_id: UUID, customer_id: str) -> CurrentChallenge:
        async with self._uow(write=True) as uow:
            customer = await self._load(uow.customers, partner_id, customer_id, for_update=True)
            if not parse_account_id(customer.chain_id).is_evm:
                raise _unsupported(customer.chain_id)
            now = self._clock.now()
            if not customer.ownership_proven_already and not customer.challenge_is_current(now):
                self._issue_challenge(customer, now)
                await uow.customers.save(customer)
                await uow.commit()
        assert customer.challenge_expires_at is not None
        return CurrentChallenge(_b64(customer.challenge_message), customer.challenge_expires_at)

    async def sign_challenge(
        self, *, partner_id: UUID, customer_id: str, signature: str, signer: str, challenge: str
    ) -> None:
        """Verifies the wallet's answer; on success onboarding moves on to screening."""
        signature_bytes = _b64decode(signature, "signature")
        challenge_text = _b64decode(challenge, "challenge").decode("utf-8", "replace")
        async with self._uow() as uow:
            customer = await self._load(uow.customers, partner_id, customer_id)
        self._require_signable(customer)
        now = self._clock.now()
        failure = self._check_answer(customer, now, signature_bytes, signer, challenge_text)
        # Screening calls an outside party: before the write transaction, never inside it.
        passed = failure is None and await self._screener.screen(customer.chain_id)
        async with self._uow(write=True) as uow:
            verified = customer
            customer = await self._load(uow.customers, partner_id, customer_id, for_update=True)
            self._require_signable(customer)
            if failure is None and customer.challenge_message != verified.challenge_message:
                # Re-issued by a concurrent call since it was checked: not the current one.
                failure = ChallengeRejected("challenge is not the customer's current challenge")
            if failure is not None:
                self._issue_challenge(customer, now)
                await uow.customers.save(customer)
                await uow.commit()
                raise failure
            customer.ownership_proven(now)
            customer.screening_finished(passed, self._clock.now())
            await uow.customers.save(customer)
            await uow.commit()

    @staticmethod
    def _require_signable(customer: Customer) -> None:
        if customer.ownership_proven_already:
            raise ChallengeAlreadySigned()
        if not parse_account_id(customer.chain_id).is_evm:
            raise _unsupported(customer.chain_id)

    def _check_answer(
        self, customer: Customer, now: datetime, signature: bytes, signer: str, text: str
    ) -> ChallengeRejected | None:
        if text != customer.challenge_message:
            return ChallengeRejected("challenge is not the customer's current challenge")
        if not customer.challenge_is_current(now):
            return ChallengeExpired("challenge expired; a new one has been issued")
        try:
            signer_account = parse_account_id(signer)
        except InvalidIdentifier:
            return ChallengeRejected("signer must be the customer's CAIP-10 chainId")
        if signer_account.canonical != customer.chain_key:
            return ChallengeRejected("signer is not the customer's wallet")
        try:
            recovered = self._wallets.recover_signer(text, signature)
        except ValueError:
            return ChallengeRejected("signature is not a valid wallet signature")
        if recovered.lower() != signer_account.address.lower():
            return ChallengeRejected("signature was not made by the signer's wallet")
        return None

    async def simulate_kyc(self, *, partner_id: UUID, customer_id: str, approved: bool) -> None:
        if not self._sandbox:
            raise SandboxOnly()
        await self.record_kyc_verdict(
            partner_id=partner_id,
            customer_id=customer_id,
            verdict=KycVerdict.APPROVED if approved else KycVerdict.REJECTED,
        )

    async def record_kyc_verdict(
        self, *, partner_id: UUID, customer_id: str, verdict: KycVerdict
    ) -> None:
        async with self._uow(write=True) as uow:
            customer = await self._load(uow.customers, partner_id, customer_id, for_update=True)
            customer.record_kyc_verdict(verdict, self._clock.now())
            await uow.customers.save(customer)
            await uow.commit()

    def _issue_challenge(self, customer: Customer, now: datetime) -> None:
        account = parse_account_id(customer.chain_id)
        if not account.is_evm:
            # Stored but not signable yet: the message still names the wallet verbatim.
            customer.replace_challenge("", now, now)
            return
        message = siwe.issue_challenge(
            domain=self._challenge.domain,
            uri=self._challenge.uri,
            address=account.checksum_address,
            chain_id=int(account.reference),
            now=now,
            nonce=self._wallets.new_nonce(),
        )
        customer.replace_challenge(message.to_text(), message.expiration_time, now)

    @staticmethod
    async def _load(
        customers: CustomerRepository,
        partner_id: UUID,
        customer_id: str,
        *,
        for_update: bool = False,
    ) -> Customer:
        found = await customers.get(
            partner_id=partner_id,
            customer_id=parse_id(customer_id, CustomerNotFound),
            for_update=for_update,
        )
        if found is None:
            raise CustomerNotFound()
        return found


async def _save_changed(
    uow: UnitOfWork, customer: Customer, accounts: list[Account], cards: list[Card]
) -> None:
    await uow.customers.switch(customer)
    await uow.accounts.switch_all(accounts)
    await uow.cards.switch_all(cards)
