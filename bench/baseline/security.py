"""Who is calling, the plain way: the bearer token, then the RFC 9421 signature checked by
`http-message-signatures`' HTTPMessageVerifier, then the nonce.

The same rules as the service: the HS256 JWT it issues (server/adapters/tokens.py) with the
credentials version compared to the partner row (server/services/auth.py); the partner's live
signing keys (ECDSA P-384 and Ed25519); the covered components the contract requires
(`@method`, `@authority`, `@path`, `@query` with a query, `content-digest` with a body,
`idempotency-key` when sent, `authorization`); `created` at most 300 s old and 60 s ahead,
`expires` honoured; Content-Digest (RFC 9530) over the raw body by the library; a nonce is
accepted once. Partner facts are memoised per process for 2 s, and one verifier per key is
kept, as the service does. Failures are 401 with a reason; most signature failures are the
library's one InvalidSignature, so they share the reason SIGNATURE_INVALID.

The check is an async FastAPI dependency: it needs the raw body, and the crypto runs on the
event loop (as the service's does); its rare database reads go to the thread pool.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import http_sf
import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from bench.baseline.database import Database
from bench.baseline.errors import unauthenticated
from server.store.tables import PartnerRow, SignatureNonceRow, SigningKeyRow

ISSUER = "customers"
MEMO_SECONDS = 2.0
MAX_AGE_SECONDS = 300
MAX_FUTURE_SECONDS = 60
NONCE_MEMORY_SECONDS = MAX_AGE_SECONDS + MAX_FUTURE_SECONDS
ALGORITHMS: Mapping[str, type[algorithms.HTTPSignatureAlgorithm]] = {
    "ecdsa-p384-sha384": algorithms.ECDSA_P384_SHA384,
    "ed25519": algorithms.ED25519,
}


@dataclass(frozen=True)
class Signed:
    """A request that passed every check but the nonce (burnt where the request commits),
    with the very body bytes its Content-Digest covers: the handler runs on those."""

    partner_id: UUID
    key_id: str
    created: int
    nonce: str | None
    body: bytes


@dataclass
class _Message:
    """What the library reads a request from."""

    method: str
    url: str
    headers: Any


class _Memo:
    """key -> value for MEMO_SECONDS (the service's `Recent`)."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[Any]], fresh: bool) -> Any:
        hit = self._entries.get(key)
        now = time.monotonic()
        if hit is not None and not fresh and now - hit[0] < MEMO_SECONDS:
            return hit[1]
        value = await load()
        self._entries[key] = (now, value)
        return value


class _ContractWindow(HTTPMessageVerifier):
    """The library verifier with the contract's time window instead of its own 5 s skew."""

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        now = int(time.time())
        created = sig_input.params.get("created")
        if type(created) is not int:
            raise InvalidSignature('Signature parameter "created" is required')
        if now - created > MAX_AGE_SECONDS:
            raise InvalidSignature(f"Signature is older than {MAX_AGE_SECONDS} s")
        if created - now > MAX_FUTURE_SECONDS:
            raise InvalidSignature(f"Signature is more than {MAX_FUTURE_SECONDS} s ahead")
        expires = sig_input.params.get("expires")
        if expires is not None and (type(expires) is not int or now > expires):
            raise InvalidSignature("Signature has expired")


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, key: Any) -> None:
        self._key_id, self._key = key_id, key

    def resolve_public_key(self, key_id: str) -> Any:
        return self._key if key_id == self._key_id else None

    def resolve_private_key(self, key_id: str) -> Any:
        raise KeyError(key_id)


@functools.lru_cache(maxsize=1024)
def _verifier(key_id: str, algorithm: str, pem: str) -> HTTPMessageVerifier:
    """One per registered key (parsing a PEM per request would be wasteful)."""
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    return _ContractWindow(
        signature_algorithm=ALGORITHMS[algorithm], key_resolver=_OneKey(key_id, key)
    )


def _key_id(signature_input: str) -> str:
    """The `keyid` of the one signature, needed to pick the key (and so the algorithm)."""
    try:
        members = http_sf.parse(signature_input.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError) as exc:
        raise unauthenticated(
            "SIGNATURE_MALFORMED", f"Signature-Input is malformed: {exc}"
        ) from None
    if not isinstance(members, dict) or len(members) != 1:
        raise unauthenticated("SIGNATURE_MALFORMED", "Exactly one signature is accepted")
    member = next(iter(members.values()))
    key_id = member[1].get("keyid") if isinstance(member, tuple) else None
    if not isinstance(key_id, str):
        raise unauthenticated("SIGNATURE_MALFORMED", "Signature parameter 'keyid' is required")
    return key_id


class Gatekeeper:
    def __init__(self, db: Database, token_secret: str) -> None:
        self._db = db
        self._secret = token_secret
        self._versions = _Memo()  # partner id -> credentials version (None: no partner)
        self._keys = _Memo()  # partner id -> {key id: (algorithm, pem)}

    async def authenticate(self, request: Request, body: bytes) -> Signed:
        partner_id = await self._partner(request.headers.get("authorization"))
        headers = request.headers
        signature_input = headers.get("signature-input")
        if not signature_input or not headers.get("signature"):
            raise unauthenticated("SIGNATURE_MISSING", "Request is not signed (RFC 9421)")
        key_id = _key_id(signature_input)
        key = (await self._live_keys(partner_id, fresh=False)).get(key_id)
        if key is None:  # registered a moment ago through another process?
            key = (await self._live_keys(partner_id, fresh=True)).get(key_id)
        if key is None:
            raise unauthenticated(
                "UNKNOWN_KEY", "Signature keyid is not a live key of this partner"
            )

        scope = request.scope
        host = headers.get("host", "").lower()
        authority = host[:-3] if host.endswith(":80") else host
        path = scope["raw_path"].decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        url = f"http://{authority}{path}" + (f"?{query}" if query else "")
        required = ["@method", "@authority", "@path"]
        if query:
            required.append("@query")
        if body:
            required.append("content-digest")
        if "idempotency-key" in headers:
            required.append("idempotency-key")
        required.append("authorization")
        message = _Message(request.method, url, headers)
        try:
            (result,) = _verifier(key_id, *key).verify(
                message, max_age=None, require_components=required, body=body
            )
        except (InvalidSignature, HTTPMessageSignaturesException, ValueError) as exc:
            why = str(exc) or "it does not verify with the key it names"
            raise unauthenticated("SIGNATURE_INVALID", f"Signature rejected: {why}") from None
        created = result.parameters["created"]
        assert isinstance(created, int)
        return Signed(partner_id, key_id, created, result.nonce, body)

    async def _partner(self, authorization: str | None) -> UUID:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("UNAUTHENTICATED", "Authorization must be 'Bearer <token>'")
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "ver"]},
            )
            partner_id, version = UUID(claims["sub"]), int(claims["ver"])
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise unauthenticated("UNAUTHENTICATED", "Invalid bearer token") from None
        known = await self._version(partner_id, fresh=False)
        if known is None or version > known:  # rotated through another process?
            known = await self._version(partner_id, fresh=True)
        if known != version:
            raise unauthenticated("UNAUTHENTICATED", "Token was revoked; request a new one")
        return partner_id

    async def _version(self, partner_id: UUID, *, fresh: bool) -> int | None:
        def load() -> int | None:
            with self._db.read() as session:
                row = session.get(PartnerRow, partner_id)
            return row.credentials_version if row else None

        found: int | None = await self._versions.get(
            partner_id, lambda: run_in_threadpool(load), fresh
        )
        return found

    async def _live_keys(self, partner_id: UUID, *, fresh: bool) -> dict[str, tuple[str, str]]:
        def load() -> dict[str, tuple[str, str]]:
            query = select(SigningKeyRow).where(SigningKeyRow.partner_id == partner_id)
            with self._db.read() as session:
                rows = session.exec(query).all()
            return {row.key_id: (row.algorithm, row.public_key_pem) for row in rows}

        found: dict[str, tuple[str, str]] = await self._keys.get(
            partner_id, lambda: run_in_threadpool(load), fresh
        )
        return found


class Nonces:
    """A nonce is accepted once per key. SQLite (one process): memory, as the service does.
    PostgreSQL: the service's signature_nonces table, inside the request's own transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()  # endpoints run in the thread pool

    def burn(self, signed: Signed, session: Session | None = None) -> None:
        """Raises 401 for a nonce seen before. PostgreSQL: in `session` (the request's own
        write transaction) if given, else in a transaction of its own."""
        if signed.nonce is None:
            return
        keep_until = signed.created + NONCE_MEMORY_SECONDS
        if self._db.is_sqlite:
            now = int(time.time())
            with self._lock:
                if len(self._seen) > 100_000:
                    self._seen = {k: t for k, t in self._seen.items() if t > now}
                if self._seen.get((signed.key_id, signed.nonce), 0) > now:
                    raise unauthenticated("NONCE_REPLAYED", "Signature nonce was already used")
                self._seen[(signed.key_id, signed.nonce)] = keep_until
            return
        if session is None:
            with self._db.write() as own:
                self._insert(own, signed, keep_until)
                own.commit()
            return
        self._insert(session, signed, keep_until)

    @staticmethod
    def _insert(session: Session, signed: Signed, keep_until: int) -> None:
        now = datetime.now(UTC)
        statement = (
            postgresql.insert(SignatureNonceRow)
            .values(
                key_id=signed.key_id,
                nonce=signed.nonce,
                expires_at=datetime.fromtimestamp(keep_until, UTC),
            )
            # A row past its expiry is a nonce from long ago: take it over.
            .on_conflict_do_update(
                index_elements=["key_id", "nonce"],
                set_={"expires_at": sa.literal(datetime.fromtimestamp(keep_until, UTC))},
                where=col(SignatureNonceRow.expires_at) <= now,
            )
            .returning(col(SignatureNonceRow.nonce))
        )
        if session.exec(statement).first() is None:
            raise unauthenticated("NONCE_REPLAYED", "Signature nonce was already used")
