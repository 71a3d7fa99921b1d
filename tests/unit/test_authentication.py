"""The authentication use case (services/authentication.py) over its ports: the real
verifier and the in-memory nonce registry, tiny fakes for the token and key services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

import pytest

from client.signing import PrivateSigningKey, generate_key, public_key_b64, sign_headers
from server.adapters.http_signatures import (
    MAX_AGE_SECONDS,
    MAX_FUTURE_SECONDS,
    RequestSignatureVerifier,
)
from server.adapters.signing_keys import parse_submitted_key
from server.domain.errors import RequestNotAuthenticated, Unauthenticated
from server.domain.limits import Quota, RateLimited
from server.domain.signing_keys import SigningKey
from server.services.authentication import Authenticated, RequestAuthenticator
from server.services.limits import PartnerRateLimiter
from server.services.ports import NONCE_REPLAYED, SIGNATURE_INVALID, UNKNOWN_KEY, SignedRequest
from server.store.nonces import MemoryNonceRegistry
from tests.helpers.clock import SteppingClock

NOW = 1_764_000_000
TOKEN = "t0ken"
PARTNER = uuid.uuid4()
AUTHORITY = "api.example.com"


class Tokens:
    async def authenticate(self, token: str) -> UUID:
        if token != TOKEN:
            raise Unauthenticated("Token is not valid")
        return PARTNER


class Keys:
    """The partner's live keys; `registered_elsewhere` only shows on a fresh look."""

    def __init__(self, *live: SigningKey, registered_elsewhere: tuple[SigningKey, ...] = ()):
        self.live_keys = list(live)
        self.registered_elsewhere = list(registered_elsewhere)
        self.fresh_looks = 0

    async def live(self, *, partner_id: UUID, fresh: bool = False) -> list[SigningKey]:
        assert partner_id == PARTNER
        if fresh:
            self.fresh_looks += 1
            self.live_keys += self.registered_elsewhere
            self.registered_elsewhere = []
        return list(self.live_keys)


class RecordingNonces(MemoryNonceRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.kept: list[tuple[str, str, int]] = []

    async def seen(self, key_id: str, nonce: str, *, keep_until: int, now: int) -> bool:
        self.kept.append((key_id, nonce, keep_until))
        return await super().seen(key_id, nonce, keep_until=keep_until, now=now)


def registration(key: PrivateSigningKey) -> SigningKey:
    return SigningKey(PARTNER, parse_submitted_key(public_key_b64(key)), datetime.now(UTC))


def signed(
    key: PrivateSigningKey, *, nonce: str | None = None, created: int = NOW, path: str = "/x"
) -> SignedRequest:
    sent = {"authorization": f"Bearer {TOKEN}"}
    added = sign_headers(
        key,
        method="GET",
        authority=AUTHORITY,
        path=path,
        query="",
        headers=sent,
        body=None,
        now=created,
        nonce=nonce,
    )
    headers = sent | {name.lower(): value for name, value in added.items()}
    return SignedRequest("GET", AUTHORITY, path, "", headers, None)


@pytest.fixture(scope="module")
def key() -> PrivateSigningKey:
    return generate_key("ed25519")


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(datetime.fromtimestamp(NOW, UTC))


def authenticator(
    keys: Keys, clock: SteppingClock, nonces: MemoryNonceRegistry | None = None
) -> RequestAuthenticator:
    return RequestAuthenticator(
        auth=Tokens(),
        keys=keys,
        verifier=RequestSignatureVerifier(),
        nonces=nonces or MemoryNonceRegistry(),
        clock=clock,
    )


async def authenticate(
    auth: RequestAuthenticator, request: SignedRequest, *, first_key: bool = False
) -> Authenticated:
    return await auth.authenticate(request, scheme="https", first_key_registration=first_key)


async def rejection(auth: RequestAuthenticator, request: SignedRequest) -> str:
    with pytest.raises(RequestNotAuthenticated) as caught:
        await authenticate(auth, request)
    return caught.value.reason


async def test_a_signed_request_is_the_token_partners_under_the_signing_key(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    auth = authenticator(Keys(registration(key)), clock)

    assert await authenticate(auth, signed(key)) == Authenticated(PARTNER, key.key_id)


async def test_a_reused_nonce_is_rejected_as_replayed(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    auth = authenticator(Keys(registration(key)), clock)
    request = signed(key, nonce="once-only")

    await authenticate(auth, request)

    assert await rejection(auth, request) == NONCE_REPLAYED


async def test_an_invalid_signature_does_not_burn_its_nonce(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    nonces = RecordingNonces()
    auth = authenticator(Keys(registration(key)), clock, nonces)
    request = signed(key, nonce="n-42")
    forged = SignedRequest("GET", AUTHORITY, "/elsewhere", "", request.headers, None)

    assert await rejection(auth, forged) == SIGNATURE_INVALID
    assert nonces.kept == []
    await authenticate(auth, request)
    assert [(k, n) for k, n, _ in nonces.kept] == [(key.key_id, "n-42")]


async def test_a_nonce_is_remembered_for_the_signature_window_plus_the_allowed_skew(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    nonces = RecordingNonces()
    auth = authenticator(Keys(registration(key)), clock, nonces)

    await authenticate(auth, signed(key, nonce="n-1", created=NOW - 10))

    assert nonces.kept == [(key.key_id, "n-1", NOW - 10 + MAX_AGE_SECONDS + MAX_FUTURE_SECONDS)]


async def test_a_replay_late_in_the_window_is_still_refused(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    auth = authenticator(Keys(registration(key)), clock)
    request = signed(key, nonce="late", created=NOW + MAX_FUTURE_SECONDS)
    await authenticate(auth, request)

    clock.advance(seconds=MAX_FUTURE_SECONDS + MAX_AGE_SECONDS - 1)

    assert await rejection(auth, request) == NONCE_REPLAYED


async def test_the_same_nonce_under_another_key_is_not_a_replay(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    other = generate_key("ecdsa-p384-sha384")
    auth = authenticator(Keys(registration(key), registration(other)), clock)

    await authenticate(auth, signed(key, nonce="shared"))

    assert (await authenticate(auth, signed(other, nonce="shared"))).key_id == other.key_id


async def test_a_key_registered_a_moment_ago_elsewhere_is_found_on_a_fresh_look(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    keys = Keys(registered_elsewhere=(registration(key),))
    keys.live_keys = [registration(generate_key("ed25519"))]  # an older key only, here
    auth = authenticator(keys, clock)

    assert (await authenticate(auth, signed(key))).key_id == key.key_id
    assert keys.fresh_looks == 1


async def test_an_unknown_key_stays_unknown_after_the_fresh_look(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    keys = Keys(registration(generate_key("ed25519")))
    auth = authenticator(keys, clock)

    assert await rejection(auth, signed(key)) == UNKNOWN_KEY
    assert keys.fresh_looks == 1


async def test_a_partner_with_no_key_yet_registers_its_first_with_the_token_alone(
    clock: SteppingClock,
) -> None:
    unsigned = SignedRequest(
        "PUT", AUTHORITY, "/auth/signing", "", {"authorization": "Bearer t0ken"}, b"{}"
    )
    auth = authenticator(Keys(), clock)

    assert await authenticate(auth, unsigned, first_key=True) == Authenticated(PARTNER, "-")


async def test_a_bad_token_is_refused_before_any_signature_is_looked_at(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    request = signed(key)
    headers = dict(request.headers) | {"authorization": "Bearer other"}
    auth = authenticator(Keys(registration(key)), clock)

    with pytest.raises(Unauthenticated):
        await authenticate(auth, SignedRequest("GET", AUTHORITY, "/x", "", headers, None))


class CountingKeys(Keys):
    def __init__(self, *live: SigningKey) -> None:
        super().__init__(*live)
        self.looks = 0

    async def live(self, *, partner_id: UUID, fresh: bool = False) -> list[SigningKey]:
        self.looks += 1
        return await super().live(partner_id=partner_id, fresh=fresh)


async def test_a_partner_over_its_rate_limit_is_refused_before_its_signature_is_looked_at(
    key: PrivateSigningKey, clock: SteppingClock
) -> None:
    nonces = RecordingNonces()
    keys = CountingKeys(registration(key))
    limiter = PartnerRateLimiter(Quota(per_second=1, burst=1), clock=lambda: 0.0)
    auth = RequestAuthenticator(
        auth=Tokens(),
        keys=keys,
        verifier=RequestSignatureVerifier(),
        nonces=nonces,
        clock=clock,
        limiter=limiter,
    )
    await authenticate(auth, signed(key, nonce="first"))
    looks = keys.looks

    with pytest.raises(RateLimited):
        await authenticate(auth, signed(key, nonce="second"))
    assert keys.looks == looks  # no key lookup, no verify
    assert [n for _, n, _ in nonces.kept] == ["first"]  # its nonce was not burned
    # A request without a valid token is refused as unauthenticated, not counted.
    stranger = SignedRequest("GET", AUTHORITY, "/x", "", {"authorization": "Bearer x"}, None)
    with pytest.raises(Unauthenticated):
        await authenticate(auth, stranger)
