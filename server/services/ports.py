"""The ports use cases talk to. Adapters in server/store and server/adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final, Protocol, Self
from uuid import UUID

from server.domain.accounts import Account, Card
from server.domain.customer import Customer, CustomerStatus, KycVerdict
from server.domain.events import ChangeEvent, EventType
from server.domain.operator import OperatorActionRecord
from server.domain.partner import Partner
from server.domain.signing_keys import PublicKey, SigningKey


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True)
class PageCursor:
    """Keyset position: the (created_at, id) of the last row of the previous page."""

    created_at: datetime
    id: UUID


class PartnerRepository(Protocol):
    async def add(self, partner: Partner) -> None: ...
    async def get(self, partner_id: UUID, *, for_update: bool = False) -> Partner | None: ...
    async def get_by_api_key(self, api_key: UUID) -> Partner | None: ...
    async def save(self, partner: Partner) -> None: ...


class CustomerRepository(Protocol):
    async def add(self, customer: Customer) -> None: ...
    async def partner_of(self, entity_id: UUID) -> UUID | None:
        """The owning partner of this id, across partners: only internal services (the
        operator) ask, and then use the partner-scoped methods with the answer."""
        ...

    async def get(
        self, *, partner_id: UUID, customer_id: UUID, for_update: bool = False
    ) -> Customer | None: ...
    async def find_duplicate(
        self, *, partner_id: UUID, chain_key: str, external_id: str
    ) -> str | None:
        """The JSON name of the field already used by another customer, if any."""
        ...

    async def list(
        self,
        *,
        partner_id: UUID,
        limit: int,
        after: PageCursor | None,
        status: CustomerStatus | None,
        external_id: str | None,
    ) -> list[Customer]: ...
    async def save(self, customer: Customer) -> None: ...
    async def switch(self, customer: Customer) -> None:
        """Saves a customer whose status a cascade changed, as `save` does; it may be written
        with the cascade's rows at commit (nothing reads it back before)."""
        ...

    async def get_by_kyc_session(
        self, session_id: str, *, for_update: bool = False
    ) -> Customer | None:
        """Deliberately across partners: a KYC partner knows only its session id, which is
        unguessable and so is the capability. Every other lookup is partner-scoped."""
        ...


class AccountRepository(Protocol):
    async def add(self, account: Account) -> None: ...
    async def partner_of(self, entity_id: UUID) -> UUID | None:
        """The owning partner of this id, across partners: only internal services (the
        operator) ask, and then use the partner-scoped methods with the answer."""
        ...

    async def get(self, *, partner_id: UUID, account_id: UUID) -> Account | None: ...
    async def for_customer(self, *, partner_id: UUID, customer_id: UUID) -> list[Account]: ...
    async def with_cards(
        self, *, partner_id: UUID, customer_id: UUID
    ) -> tuple[list[Account], list[Card]]:
        """The customer's accounts and all their cards, in one read (a cascade's tree)."""
        ...

    async def list(
        self, *, partner_id: UUID, customer_id: UUID, limit: int, after: PageCursor | None
    ) -> list[Account]: ...
    async def save(self, account: Account) -> None: ...
    async def switch_all(self, accounts: Sequence[Account]) -> None:
        """Saves the status of those of `accounts` that changed (a cascade), at once."""
        ...


class CardRepository(Protocol):
    async def add(self, card: Card) -> None: ...
    async def partner_of(self, entity_id: UUID) -> UUID | None:
        """The owning partner of this id, across partners: only internal services (the
        operator) ask, and then use the partner-scoped methods with the answer."""
        ...

    async def get(self, *, partner_id: UUID, card_id: UUID) -> Card | None: ...
    async def for_customer(self, *, partner_id: UUID, customer_id: UUID) -> list[Card]: ...
    async def for_account(self, *, partner_id: UUID, account_id: UUID) -> list[Card]: ...
    async def list(
        self, *, partner_id: UUID, account_id: UUID, limit: int, after: PageCursor | None
    ) -> list[Card]: ...
    async def save(self, card: Card) -> None: ...
    async def switch_all(self, cards: Sequence[Card]) -> None:
        """Saves the status of those of `cards` that changed (a cascade), at once."""
        ...


class SigningKeyRepository(Protocol):
    async def live(self, *, partner_id: UUID, for_update: bool = False) -> list[SigningKey]:
        """`for_update`: hold the partner's key set until commit, so concurrent changes
        see each other (the two-key limit, the same key registered twice)."""
        ...

    async def add(self, key: SigningKey) -> None: ...
    async def delete(self, *, partner_id: UUID, key_id: str) -> bool: ...


class OperatorActionRepository(Protocol):
    async def add(self, record: OperatorActionRecord) -> None: ...


class EventReader(Protocol):
    async def after(
        self,
        *,
        partner_id: UUID,
        seq: int,
        limit: int,
        types: Iterable[EventType] = (),
        entity_id: UUID | None = None,
    ) -> list[ChangeEvent]: ...
    async def last_seq(self, *, partner_id: UUID) -> int: ...


class UnitOfWork(Protocol):
    """One database transaction. Nothing is written unless `commit` is called."""

    @property
    def partners(self) -> PartnerRepository: ...
    @property
    def customers(self) -> CustomerRepository: ...
    @property
    def accounts(self) -> AccountRepository: ...
    @property
    def cards(self) -> CardRepository: ...
    @property
    def signing_keys(self) -> SigningKeyRepository: ...
    @property
    def operator_actions(self) -> OperatorActionRepository: ...
    @property
    def events(self) -> EventReader: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once this transaction has really committed, never if it rolls
        back. (An idempotent request's transaction commits later than `commit` returns,
        together with its stored answer: store/idempotency.py.)"""
        ...

    def credentials_changed(self, partner_id: UUID) -> None:
        """This transaction changes the partner's credentials or signing keys: once it
        commits, the other replicas forget what they remember of them."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = False) -> UnitOfWork: ...


@dataclass(frozen=True)
class KycSession:
    session_id: str
    verification_url: str


@dataclass(frozen=True)
class KycCallback:
    """A verdict a KYC partner reported, after its signature was checked."""

    session_id: str
    verdict: KycVerdict
    event_id: str  # the partner's id for the event: the same on every retry


class KycProvider(Protocol):
    """The external KYC partner: opens a session the end user completes on its portal, and
    reports the verdict later in a callback signed by the partner's own scheme."""

    async def open_session(self, *, partner_id: UUID, customer_id: UUID) -> KycSession: ...
    async def verify_callback(
        self, *, body: bytes, headers: Mapping[str, str], now: datetime
    ) -> KycCallback | None:
        """Authenticates the raw callback body and headers (lower-case names), then parses it.
        Raises InvalidCallbackSignature before parsing anything, InvalidField after. None: an
        authentic event that carries no final verdict (a partner's "pending", say)."""
        ...


class Screener(Protocol):
    """Wallet screening (sanctions, fraud lists): True when the address may onboard."""

    async def screen(self, chain_id: str) -> bool: ...


class Wallets(Protocol):
    def recover_signer(self, message_text: str, signature: bytes) -> str: ...
    def new_nonce(self) -> str: ...


@dataclass(frozen=True)
class TokenClaims:
    partner_id: UUID
    credentials_version: int
    expires_at: int


class TokenCodec(Protocol):
    def encode(self, claims: TokenClaims) -> str: ...
    def decode(self, token: str, *, now: int) -> TokenClaims:
        """Raises domain.errors.Unauthenticated on a bad or expired token."""
        ...


class PublicKeyParser(Protocol):
    """Parses a partner-submitted public key; raises InvalidSigningKey saying what is wrong."""

    def __call__(self, submitted: str) -> PublicKey: ...


# --- Request authentication (services/authentication.py) ---------------------------------------


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request exactly as received (nothing decoded or normalised), for the signature check.

    Pure data, here rather than in the domain: it is what the authentication use case and its
    verifier port exchange, not a business concept. The auth interceptor builds it from the
    REST components the gateway forwards, or from the native gRPC call.
    """

    method: str  # "GET", ...; "POST" for native gRPC
    authority: str  # host[:port] as addressed: lower-case, default port stripped
    path: str  # raw path, still percent-encoded; the gRPC method path for native gRPC
    query: str  # raw query without "?"; "" when none
    headers: Mapping[str, str]  # lower-case names -> values
    body: bytes | None  # None or b"" when there is no body


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """Who signed the request, and the parameters a replay check or audit log needs."""

    key_id: str
    algorithm: str
    created: int
    nonce: str | None
    expires: int | None = None


# Why a SignatureVerifier refused a request (SignatureRejected.reason): the ErrorInfo reason
# a partner sees (README "Signing rules").
SIGNATURE_MISSING: Final = "SIGNATURE_MISSING"
SIGNATURE_MALFORMED: Final = "SIGNATURE_MALFORMED"
SIGNATURE_COMPONENTS_MISSING: Final = "SIGNATURE_COMPONENTS_MISSING"
SIGNATURE_EXPIRED: Final = "SIGNATURE_EXPIRED"
SIGNATURE_NOT_YET_VALID: Final = "SIGNATURE_NOT_YET_VALID"
UNKNOWN_KEY: Final = "UNKNOWN_KEY"
ALGORITHM_MISMATCH: Final = "ALGORITHM_MISMATCH"
SIGNATURE_INVALID: Final = "SIGNATURE_INVALID"
NONCE_REPLAYED: Final = "NONCE_REPLAYED"
DIGEST_MISSING: Final = "DIGEST_MISSING"
DIGEST_MALFORMED: Final = "DIGEST_MALFORMED"
DIGEST_UNSUPPORTED: Final = "DIGEST_UNSUPPORTED"
DIGEST_MISMATCH: Final = "DIGEST_MISMATCH"
REASONS: Final = frozenset(
    {
        SIGNATURE_MISSING,
        SIGNATURE_MALFORMED,
        SIGNATURE_COMPONENTS_MISSING,
        SIGNATURE_EXPIRED,
        SIGNATURE_NOT_YET_VALID,
        UNKNOWN_KEY,
        ALGORITHM_MISMATCH,
        SIGNATURE_INVALID,
        NONCE_REPLAYED,
        DIGEST_MISSING,
        DIGEST_MALFORMED,
        DIGEST_UNSUPPORTED,
        DIGEST_MISMATCH,
    }
)


class SignatureRejected(Exception):
    """A request failed signature or digest verification: 401 with `reason` (one of
    REASONS) and a `message` naming the check that failed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class KeyResolver(Protocol):
    """Looks a key id up among the token's partner's live keys only (None if not one)."""

    def __call__(self, key_id: str) -> PublicKey | None: ...


class SignatureVerifier(Protocol):
    """Checks a request's RFC 9421 signature and RFC 9530 Content-Digest (not its nonce:
    replay is the caller's, against a NonceRegistry, once the signature is known good)."""

    @property
    def max_age_seconds(self) -> int:
        """How old `created` may be."""
        ...

    @property
    def max_future_seconds(self) -> int:
        """How far ahead of this clock `created` may be."""
        ...

    def verify(
        self, request: SignedRequest, keys: KeyResolver, *, now: int, scheme: str
    ) -> VerifiedSignature:
        """Who signed `request`; raises SignatureRejected naming the failed check."""
        ...


class NonceRegistry(Protocol):
    """Signature nonces seen per key, shared by every process that verifies requests."""

    async def seen(self, key_id: str, nonce: str, *, keep_until: int, now: int) -> bool:
        """Records the nonce until `keep_until` (Unix seconds); True when already there."""
        ...
