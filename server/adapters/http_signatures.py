"""Verify RFC 9421 request signatures and RFC 9530 Content-Digest, as the contract requires.

The SignatureVerifier port (services/ports.py). Pure: no server wiring, no storage. The
caller hands over the request exactly as received (`SignedRequest`), a resolver for the
token's partner's live keys and the current time; it gets back who signed, or
`SignatureRejected` with an UPPER_SNAKE reason and a message naming the check that failed.
Over REST the caller passes the raw bytes and raw target the gateway saw; over native gRPC it
passes `POST`, the gRPC method path, the public host and the serialized request message.

Checks, in order (cheap before costly):
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
7. The signature itself (signature_base.py: SIGNATURE_INVALID; an undecodable signature or
   an uncheckable component list is SIGNATURE_MALFORMED).
The `nonce` is the caller's to check once this passes (services/authentication.py), so a
forged request cannot burn one.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

import cryptography.exceptions

from server.adapters.signature_base import check_signature
from server.adapters.signature_fields import (
    check_content_digest,
    parse_signature_fields,
    reject,
)
from server.adapters.signing_keys import ECDSA_P384_SHA384, ED25519, load_verification_key
from server.domain.signing_keys import InvalidSigningKey
from server.services.ports import (
    ALGORITHM_MISMATCH,
    DIGEST_MISSING,
    SIGNATURE_COMPONENTS_MISSING,
    SIGNATURE_EXPIRED,
    SIGNATURE_MALFORMED,
    SIGNATURE_MISSING,
    SIGNATURE_NOT_YET_VALID,
    UNKNOWN_KEY,
    KeyResolver,
    SignedRequest,
    VerifiedSignature,
)

MAX_AGE_SECONDS: Final = 300
MAX_FUTURE_SECONDS: Final = 60

# RFC 9421 sections 3.3.5 and 3.3.6: raw r||s (2 x 48 bytes) and a 64-byte EdDSA signature.
_SIGNATURE_BYTES: Final[Mapping[str, int]] = {ECDSA_P384_SHA384: 96, ED25519: 64}


class RequestSignatureVerifier:
    """Verifies signed requests; caches each registered key's loaded `cryptography` object.

    The cache is keyed by the whole PublicKey (key id, algorithm, PEM), so a key is trusted
    only for the exact material the resolver returned for this partner, never by key id
    alone.
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
        self._load = functools.lru_cache(maxsize=cache_size)(load_verification_key)

    @property
    def max_age_seconds(self) -> int:
        return self._max_age

    @property
    def max_future_seconds(self) -> int:
        return self._max_future

    def verify(
        self,
        request: SignedRequest,
        keys: KeyResolver,
        *,
        now: int,
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
            reject(
                SIGNATURE_MISSING,
                f"Request is not signed: missing {' and '.join(absent)} {noun} "
                "(RFC 9421 signatures are required on every authenticated request)",
            )
        parsed = parse_signature_fields(signature_input, signature)

        body = request.body or b""
        digest = headers.get("content-digest")
        if digest is None:
            if body:
                reject(DIGEST_MISSING, "Request has a body but no Content-Digest header")
        else:
            check_content_digest(digest, body)

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
            reject(
                SIGNATURE_COMPONENTS_MISSING, f"Signature does not cover required {noun} {names}"
            )

        age = now - parsed.created
        if age > self._max_age:
            reject(
                SIGNATURE_EXPIRED,
                f"Signature parameter 'created' is {age} s old; the limit is {self._max_age} s",
            )
        if -age > self._max_future:
            reject(
                SIGNATURE_NOT_YET_VALID,
                f"Signature parameter 'created' is {-age} s in the future; "
                f"the limit is {self._max_future} s (check the client clock)",
            )
        if parsed.expires is not None and now > parsed.expires:
            reject(
                SIGNATURE_EXPIRED,
                f"Signature parameter 'expires' passed {now - parsed.expires} s ago",
            )

        key = keys(parsed.key_id)
        if key is None:
            reject(
                UNKNOWN_KEY,
                f"Signature keyid '{parsed.key_id[:100]}' is not a live signing key "
                "of this partner",
            )
        if parsed.alg is not None and parsed.alg != key.algorithm:
            reject(
                ALGORITHM_MISMATCH,
                f"Signature parameter alg '{parsed.alg[:40]}' does not match key "
                f"'{key.key_id}', which is {key.algorithm}",
            )
        if key.algorithm not in _SIGNATURE_BYTES:
            reject(UNKNOWN_KEY, f"Signing key '{key.key_id}' has unsupported {key.algorithm}")
        expected_length = _SIGNATURE_BYTES[key.algorithm]
        if len(parsed.signature) != expected_length:
            reject(
                SIGNATURE_MALFORMED,
                f"A {key.algorithm} signature is {expected_length} raw bytes (RFC 9421 "
                f"section 3.3; ECDSA as r||s, not DER); got {len(parsed.signature)} bytes",
            )

        try:
            loaded = self._load(key)
        except (InvalidSigningKey, ValueError, cryptography.exceptions.UnsupportedAlgorithm):
            reject(UNKNOWN_KEY, f"Signing key '{key.key_id}' could not be loaded")
        check_signature(request, parsed, key, loaded, scheme)
        return VerifiedSignature(
            key_id=key.key_id,
            algorithm=key.algorithm,
            created=parsed.created,
            nonce=parsed.nonce,
            expires=parsed.expires,
        )


_DEFAULT_VERIFIER = RequestSignatureVerifier()


def verify_request(
    request: SignedRequest, keys: KeyResolver, *, now: int, scheme: str = "https"
) -> VerifiedSignature:
    """Verify with the process-wide verifier (and its loaded-key cache)."""
    return _DEFAULT_VERIFIER.verify(request, keys, now=now, scheme=scheme)
