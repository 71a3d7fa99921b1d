"""Verify RFC 9421 request signatures and RFC 9530 Content-Digest, as the contract requires.

Pure: no server wiring, no storage. The caller hands over the request exactly as received
(`SignedRequest`), a resolver for the token's partner's live keys, the current time and a
nonce store; it gets back who signed, or `SignatureRejected` with an UPPER_SNAKE reason and a
message naming the check that failed. Over REST the caller passes the raw bytes and raw target
the gateway saw; over native gRPC it passes `POST`, the gRPC method path, the public host and
the serialized request message.

Checks, in order (cheap before costly; the nonce is burnt only by a valid signature):
1. `Signature` and `Signature-Input` present (SIGNATURE_MISSING).
2. Both parse as RFC 8941 dictionaries with exactly one, identical label; `keyid` and
   `created` present; parameters known and well typed (SIGNATURE_MALFORMED). One label only:
   a second signature would need a policy for choosing between them, and no client needs it.
3. Content-Digest: required with a non-empty body (DIGEST_MISSING); unparseable
   (DIGEST_MALFORMED); no `sha-256`/`sha-512` member (DIGEST_UNSUPPORTED); every supported
   member must match the body bytes (DIGEST_MISMATCH). A digest sent with no body is checked
   against b"".
4. Coverage: `@method`, `@authority`, `@path`, `authorization`, plus `@query` with a query,
   `content-digest` with a body, `idempotency-key` when sent (SIGNATURE_COMPONENTS_MISSING).
5. Time, against the injected `now`: `created` at most 300 s old (SIGNATURE_EXPIRED) and at
   most 60 s ahead (SIGNATURE_NOT_YET_VALID); `expires` in the past (SIGNATURE_EXPIRED).
6. `keyid` is a live key of the partner (UNKNOWN_KEY); `alg`, if sent, is the key's
   (ALGORITHM_MISMATCH).
7. The signature itself, by `http-message-signatures` (SIGNATURE_INVALID; an undecodable
   signature or an uncheckable component list is SIGNATURE_MALFORMED).
8. `nonce`, if sent, not seen before for this key (NONCE_REPLAYED).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, NoReturn, Protocol

import cryptography.exceptions
import http_sf
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)

from server.adapters.signing_keys import (
    ECDSA_P384_SHA384,
    ED25519,
    InvalidSigningKey,
    PublicSigningKey,
    VerificationKey,
    load_verification_key,
)

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

MAX_AGE_SECONDS: Final = 300
MAX_FUTURE_SECONDS: Final = 60
# Bounds on attacker-controlled input before it reaches a parser or the nonce store.
MAX_SIGNATURE_FIELD_CHARS: Final = 4096
MAX_NONCE_CHARS: Final = 128

_SIGNATURE_PARAMETERS: Final = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})
_DIGESTS: Final[Mapping[str, Callable[[bytes], hashlib._Hash]]] = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}
_LIBRARY_ALGORITHMS: Final[Mapping[str, type[algorithms.HTTPSignatureAlgorithm]]] = {
    ECDSA_P384_SHA384: algorithms.ECDSA_P384_SHA384,
    ED25519: algorithms.ED25519,
}
# RFC 9421 sections 3.3.5 and 3.3.6: raw r||s (2 x 48 bytes) and a 64-byte EdDSA signature.
_SIGNATURE_BYTES: Final[Mapping[str, int]] = {ECDSA_P384_SHA384: 96, ED25519: 64}


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the verifier sees, exactly as received (nothing decoded or normalised here)."""

    method: str  # "GET", ...; "POST" for native gRPC
    authority: str  # host[:port] as addressed: lower-case, default port stripped
    path: str  # raw path, still percent-encoded; the gRPC method path for native gRPC
    query: str  # raw query without "?"; "" when none
    headers: Mapping[str, str]  # lower-case names -> values
    body: bytes | None  # None or b"" when there is no body


class KeyResolver(Protocol):
    """Looks a key id up among the token's partner's live keys only (None if not one)."""

    def __call__(self, key_id: str) -> PublicSigningKey | None: ...


NonceSeen = Callable[[str, str, int], bool]
"""(key_id, nonce, created) -> True if already seen, else record it and return False.

Called only after the signature verified, so forged requests cannot burn nonces. A record
must outlive the window in which `created` is acceptable: keep it until at least
created + MAX_AGE_SECONDS (and a replica's clock may run MAX_FUTURE_SECONDS behind).
"""


class SignatureRejected(Exception):
    """A request failed signature or digest verification: 401 with `reason` and `message`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """Who signed the request, and the parameters a replay store or audit log needs."""

    key_id: str
    algorithm: str
    created: int
    nonce: str | None
    expires: int | None = None


@dataclass(frozen=True, slots=True)
class _SignatureInput:
    label: str
    components: tuple[tuple[str, bool], ...]  # (name, has parameters), in signed order
    key_id: str
    created: int
    expires: int | None
    alg: str | None
    nonce: str | None
    signature: bytes


@dataclass(slots=True)
class _LibraryRequest:
    """The request-like object `http-message-signatures` derives components from."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


class _PolicyVerifier(HTTPMessageVerifier):
    """The library verifier minus its wall-clock checks.

    Why: the library compares `created`/`expires` with `datetime.now()` and a fixed 5 s skew,
    so a `created` 30 s ahead (allowed here: 60 s) would fail, tests could not inject time,
    and every failure would be one generic InvalidSignature. Step 5 of this module checks
    the contract's windows against the caller's clock before the library runs.
    """

    def validate_created_and_expires(self, sig_input: object, max_age: object = None) -> None:
        return None


class _SingleKeyResolver(HTTPSignatureKeyResolver):
    """Hands the library the one already-parsed key object (no PEM parsing per request)."""

    def __init__(self, key_id: str, key: VerificationKey) -> None:
        self._key_id = key_id
        self._key = key

    def resolve_public_key(self, key_id: str) -> VerificationKey | None:
        return self._key if key_id == self._key_id else None

    def resolve_private_key(self, key_id: str) -> NoReturn:
        raise KeyError("verification only")


class RequestSignatureVerifier:
    """Verifies signed requests; caches one ready library verifier per registered key.

    The cache is keyed by (key id, algorithm, PEM), so a key is trusted only for the exact
    material the resolver returned for this partner, never by key id alone.
    """

    def __init__(
        self,
        *,
        cache_size: int = 1024,
        max_age_seconds: int = MAX_AGE_SECONDS,
        max_future_seconds: int = MAX_FUTURE_SECONDS,
    ) -> None:
        self._max_age = max_age_seconds
        self._max_future = max_future_seconds
        self._verifier_for = functools.lru_cache(maxsize=cache_size)(_library_verifier)

    def verify(
        self,
        request: SignedRequest,
        keys: KeyResolver,
        *,
        now: int,
        nonce_seen: NonceSeen | None = None,
        scheme: str = "https",
    ) -> VerifiedSignature:
        """Return who signed `request`, or raise SignatureRejected naming the failed check."""
        headers = request.headers
        signature_input = headers.get("signature-input")
        signature = headers.get("signature")
        if not signature_input or not signature:
            absent = [
                name
                for name, value in (("Signature", signature), ("Signature-Input", signature_input))
                if not value
            ]
            noun = "header" if len(absent) == 1 else "headers"
            _reject(
                SIGNATURE_MISSING,
                f"Request is not signed: missing {' and '.join(absent)} {noun} "
                "(RFC 9421 signatures are required on every authenticated request)",
            )
        parsed = _parse_signature_fields(signature_input, signature)

        body = request.body or b""
        digest = headers.get("content-digest")
        if digest is None:
            if body:
                _reject(DIGEST_MISSING, "Request has a body but no Content-Digest header")
        else:
            _check_content_digest(digest, body)

        covered = {name for name, has_params in parsed.components if not has_params}
        required = ["@method", "@authority", "@path"]
        if request.query:
            required.append("@query")
        if body:
            required.append("content-digest")
        if "idempotency-key" in headers:
            required.append("idempotency-key")
        required.append("authorization")
        missing = [name for name in required if name not in covered]
        if missing:
            names = ", ".join(f"'{name}'" for name in missing)
            noun = "component" if len(missing) == 1 else "components"
            _reject(
                SIGNATURE_COMPONENTS_MISSING, f"Signature does not cover required {noun} {names}"
            )

        age = now - parsed.created
        if age > self._max_age:
            _reject(
                SIGNATURE_EXPIRED,
                f"Signature parameter 'created' is {age} s old; the limit is {self._max_age} s",
            )
        if -age > self._max_future:
            _reject(
                SIGNATURE_NOT_YET_VALID,
                f"Signature parameter 'created' is {-age} s in the future; "
                f"the limit is {self._max_future} s (check the client clock)",
            )
        if parsed.expires is not None and now > parsed.expires:
            _reject(
                SIGNATURE_EXPIRED,
                f"Signature parameter 'expires' passed {now - parsed.expires} s ago",
            )

        key = keys(parsed.key_id)
        if key is None:
            _reject(
                UNKNOWN_KEY,
                f"Signature keyid '{parsed.key_id[:100]}' is not a live signing key "
                "of this partner",
            )
        if parsed.alg is not None and parsed.alg != key.algorithm:
            _reject(
                ALGORITHM_MISMATCH,
                f"Signature parameter alg '{parsed.alg[:40]}' does not match key "
                f"'{key.key_id}', which is {key.algorithm}",
            )
        if key.algorithm not in _LIBRARY_ALGORITHMS:
            _reject(UNKNOWN_KEY, f"Signing key '{key.key_id}' has unsupported {key.algorithm}")
        expected_length = _SIGNATURE_BYTES[key.algorithm]
        if len(parsed.signature) != expected_length:
            _reject(
                SIGNATURE_MALFORMED,
                f"A {key.algorithm} signature is {expected_length} raw bytes (RFC 9421 "
                f"section 3.3; ECDSA as r||s, not DER); got {len(parsed.signature)} bytes",
            )

        try:
            verifier = self._verifier_for(key.key_id, key.algorithm, key.pem)
        except (InvalidSigningKey, ValueError, cryptography.exceptions.UnsupportedAlgorithm):
            _reject(UNKNOWN_KEY, f"Signing key '{key.key_id}' could not be loaded")
        self._check_signature(verifier, request, parsed, key, scheme)

        if (
            parsed.nonce is not None
            and nonce_seen is not None
            and nonce_seen(key.key_id, parsed.nonce, parsed.created)
        ):
            _reject(NONCE_REPLAYED, "Signature nonce was already used: replayed request")
        return VerifiedSignature(
            key_id=key.key_id,
            algorithm=key.algorithm,
            created=parsed.created,
            nonce=parsed.nonce,
            expires=parsed.expires,
        )

    @staticmethod
    def _check_signature(
        verifier: HTTPMessageVerifier,
        request: SignedRequest,
        parsed: _SignatureInput,
        key: PublicSigningKey,
        scheme: str,
    ) -> None:
        """Run the library's RFC 9421 verification over the raw method, target and headers."""
        # The library derives @authority/@path/@query from an absolute URL; its parser keeps
        # the supplied spelling (no decoding, no dot-segment removal), so raw values
        # survive. It rejects targets with characters RFC 3986 does not allow unencoded.
        url = f"{scheme}://{request.authority}{request.path}"
        if request.query:
            url = f"{url}?{request.query}"
        # Only the signature fields and covered fields: the library copies and normalises
        # every header it is given, twice, and uncovered ones cannot matter.
        headers = {
            "signature-input": request.headers["signature-input"],
            "signature": request.headers["signature"],
        }
        for name, _ in parsed.components:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value
        message = _LibraryRequest(method=request.method, url=url, headers=headers)
        try:
            # max_age=None: time was checked in step 5. No body=: digests were checked in
            # step 3 (the library would reject a Content-Digest that also carries an
            # algorithm it does not know, which RFC 9530 lets a recipient ignore).
            verifier.verify(message, max_age=None)
        except InvalidSignature as exc:
            cause = exc.__cause__
            if isinstance(cause, cryptography.exceptions.InvalidSignature):
                _reject(
                    SIGNATURE_INVALID,
                    f"Signature does not verify with key '{key.key_id}' ({key.algorithm}): "
                    "the signed components differ from the request as received",
                )
            if isinstance(cause, HTTPMessageSignaturesException):
                _reject(SIGNATURE_MALFORMED, f"Signature cannot be checked: {cause}")
            _reject(SIGNATURE_INVALID, f"Signature is invalid: {exc}")
        except HTTPMessageSignaturesException as exc:
            _reject(SIGNATURE_MALFORMED, f"Signature cannot be checked: {exc}")


def _library_verifier(key_id: str, algorithm: str, pem: str) -> HTTPMessageVerifier:
    """Build once per key: parse the PEM and bind it to the library's algorithm class."""
    key = load_verification_key(PublicSigningKey(key_id=key_id, algorithm=algorithm, pem=pem))
    return _PolicyVerifier(
        signature_algorithm=_LIBRARY_ALGORITHMS[algorithm],
        key_resolver=_SingleKeyResolver(key_id, key),
    )


def _reject(reason: str, message: str) -> NoReturn:
    raise SignatureRejected(reason, message)


def _reject_duplicate(name: str, context: str) -> None:
    if context == "dictionary":
        raise ValueError(f"duplicate member '{name}'")


def _parse_dictionary(value: str, field_name: str, reason: str) -> dict[str, object]:
    if len(value) > MAX_SIGNATURE_FIELD_CHARS:
        _reject(reason, f"{field_name} header is too long ({len(value)} characters)")
    try:
        parsed = http_sf.parse(
            value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate
        )
    except (ValueError, TypeError) as exc:  # StructuredFieldError and UnicodeError included
        _reject(reason, f"{field_name} header is not a valid structured dictionary: {exc}")
    if not isinstance(parsed, dict):
        _reject(reason, f"{field_name} header is not a structured dictionary")
    return dict(parsed)


def _parse_signature_fields(signature_input: str, signature: str) -> _SignatureInput:
    """Parse the two fields far enough to apply the contract's policy before any crypto."""
    inputs = _parse_dictionary(signature_input, "Signature-Input", SIGNATURE_MALFORMED)
    signatures = _parse_dictionary(signature, "Signature", SIGNATURE_MALFORMED)
    if len(inputs) != 1 or len(signatures) != 1:
        _reject(
            SIGNATURE_MALFORMED,
            f"Exactly one signature is accepted; Signature-Input has {len(inputs)} labels "
            f"and Signature has {len(signatures)}",
        )
    (label, member), (signature_label, signature_member) = (
        next(iter(inputs.items())),
        next(iter(signatures.items())),
    )
    if label != signature_label:
        _reject(
            SIGNATURE_MALFORMED,
            f"Signature label '{signature_label}' does not match Signature-Input label '{label}'",
        )
    if not (isinstance(member, tuple) and len(member) == 2 and isinstance(member[0], list)):
        _reject(SIGNATURE_MALFORMED, f"Signature-Input '{label}' is not an inner list")
    items, params = member
    components: list[tuple[str, bool]] = []
    for item in items:
        name, item_params = item
        if not isinstance(name, str):
            _reject(SIGNATURE_MALFORMED, "Covered component identifiers must be quoted strings")
        components.append((name, bool(item_params)))

    unknown = sorted(set(params) - _SIGNATURE_PARAMETERS)
    if unknown:
        _reject(SIGNATURE_MALFORMED, f"Unsupported signature parameter '{unknown[0][:40]}'")
    key_id = params.get("keyid")
    if key_id is None:
        _reject(SIGNATURE_MALFORMED, "Signature parameter 'keyid' is required")
    created = params.get("created")
    if created is None:
        _reject(SIGNATURE_MALFORMED, "Signature parameter 'created' is required")
    expires = params.get("expires")
    alg = params.get("alg")
    nonce = params.get("nonce")
    for name, value, kind in (
        ("keyid", key_id, str),
        ("created", created, int),
        ("expires", expires, int),
        ("alg", alg, str),
        ("nonce", nonce, str),
        ("tag", params.get("tag"), str),
    ):
        # `type(...) is` so that a Boolean (an int in Python) is not taken for an Integer.
        if value is not None and type(value) is not kind:
            expected = "an integer" if kind is int else "a quoted string"
            _reject(SIGNATURE_MALFORMED, f"Signature parameter '{name}' must be {expected}")
    assert isinstance(key_id, str) and isinstance(created, int)
    if isinstance(nonce, str) and not 0 < len(nonce) <= MAX_NONCE_CHARS:
        _reject(SIGNATURE_MALFORMED, f"Signature nonce must be 1 to {MAX_NONCE_CHARS} characters")

    if not (isinstance(signature_member, tuple) and isinstance(signature_member[0], bytes)):
        _reject(SIGNATURE_MALFORMED, f"Signature '{label}' is not a byte sequence (:base64:)")
    return _SignatureInput(
        label=label,
        components=tuple(components),
        key_id=key_id,
        created=created,
        expires=expires if isinstance(expires, int) else None,
        alg=alg if isinstance(alg, str) else None,
        nonce=nonce if isinstance(nonce, str) else None,
        signature=signature_member[0],
    )


def _check_content_digest(value: str, body: bytes) -> None:
    """RFC 9530 against the body bytes as received.

    Not the library's ContentDigest: it rejects a field that also lists an algorithm it does
    not know (RFC 9530 lets a recipient ignore those) and reports every failure as the same
    InvalidSignature, where the contract wants missing / unsupported / mismatch told apart.
    """
    members = _parse_dictionary(value, "Content-Digest", DIGEST_MALFORMED)
    supported = [(name, member) for name, member in members.items() if name in _DIGESTS]
    if not supported:
        listed = ", ".join(sorted(members)[:5]) or "none"
        _reject(
            DIGEST_UNSUPPORTED,
            f"Content-Digest has no supported algorithm (got {listed}); use sha-256 or sha-512",
        )
    for name, member in supported:
        digest = member[0] if isinstance(member, tuple) else None
        if not isinstance(digest, bytes):
            _reject(DIGEST_MALFORMED, f"Content-Digest {name} is not a byte sequence (:base64:)")
        if not hmac.compare_digest(digest, _DIGESTS[name](body).digest()):
            _reject(DIGEST_MISMATCH, f"Content-Digest {name} does not match the request body")


_DEFAULT_VERIFIER = RequestSignatureVerifier()


def verify_request(
    request: SignedRequest,
    keys: KeyResolver,
    *,
    now: int,
    nonce_seen: NonceSeen | None = None,
    scheme: str = "https",
) -> VerifiedSignature:
    """Verify with the process-wide verifier (and its parsed-key cache)."""
    return _DEFAULT_VERIFIER.verify(request, keys, now=now, nonce_seen=nonce_seen, scheme=scheme)
