"""Partner SDK: sign requests the way the service verifies them (RFC 9421 + RFC 9530).

Self-contained on purpose (it never imports `server`): a partner can copy this one module.
Signatures cover `@method`, `@authority`, `@path`, `@query` (with a query), `content-digest`
(with a body), and `authorization` / `idempotency-key` when those are sent. ECDSA P-384
(`ecdsa-p384-sha384`, the default) and Ed25519 keys are supported; ECDSA signatures are raw
r||s, as RFC 9421 requires (the `http-message-signatures` library produces that).

- `sign_headers(...)`: the headers to add to any request you build yourself.
- `SigningAuth`: an `httpx.Auth` that signs every request of an httpx client (sync or async).
- `SigningClientInterceptor`: signs native gRPC calls on a `grpc.aio` channel; install it with
  `interceptors=signer.channel_interceptors()` (see the class for why).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import grpc
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

ECDSA_P384_SHA384: Final = "ecdsa-p384-sha384"
ED25519: Final = "ed25519"
SIGNATURE_LABEL: Final = "sig1"

_LIBRARY_ALGORITHMS: Final[Mapping[str, type[algorithms.HTTPSignatureAlgorithm]]] = {
    ECDSA_P384_SHA384: algorithms.ECDSA_P384_SHA384,
    ED25519: algorithms.ED25519,
}
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class SerializableMessage(Protocol):
    """A protobuf request message (what a gRPC stub serializes)."""

    def SerializeToString(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class PrivateSigningKey:
    """A partner's private signing key, with the algorithm and key id the service expects."""

    private_key: PrivateKey = field(repr=False)
    algorithm: str  # ECDSA_P384_SHA384 | ED25519
    key_id: str  # RFC 7638 JWK thumbprint; the `keyId` that `PUT /auth/signing` answers


def load_private_key(pem: bytes, password: bytes | None = None) -> PrivateSigningKey:
    """Load a PEM private key (PKCS#8 or SEC1); only P-384 and Ed25519 are accepted."""
    return _describe(serialization.load_pem_private_key(pem, password=password))


def generate_key(algorithm: str = ECDSA_P384_SHA384) -> PrivateSigningKey:
    """Create a fresh key for `algorithm` ('ecdsa-p384-sha384' or 'ed25519')."""
    if algorithm == ECDSA_P384_SHA384:
        return _describe(ec.generate_private_key(ec.SECP384R1()))
    if algorithm == ED25519:
        return _describe(ed25519.Ed25519PrivateKey.generate())
    raise ValueError(f"Unsupported algorithm {algorithm!r}: use {ECDSA_P384_SHA384} or {ED25519}")


def private_key_pem(key: PrivateSigningKey) -> bytes:
    """Unencrypted PKCS#8 PEM, to store the key (protect the file)."""
    return key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_b64(key: PrivateSigningKey) -> str:
    """base64 of the PEM SubjectPublicKeyInfo: the `publicKey` that `PUT /auth/signing` takes."""
    pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(pem).decode("ascii")


def sign_headers(
    key: PrivateSigningKey,
    *,
    method: str,
    authority: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes | None,
    now: int | None = None,
    nonce: str | None = None,
    expires_in: int | None = None,
) -> dict[str, str]:
    """Return `Content-Digest` (with a body), `Signature-Input` and `Signature` to add.

    `authority` is host[:port] as addressed (default port omitted), `path` and `query` are the
    raw, still percent-encoded target (query without "?"); `headers` are the request's other
    headers, of which `Authorization` and `Idempotency-Key` get signed when present.
    """
    wanted = {"authorization", "idempotency-key"}
    work = {name.lower(): value for name, value in headers.items() if name.lower() in wanted}
    covered = ["@method", "@authority", "@path"]
    if query:
        covered.append("@query")
    covered.extend(name for name in ("authorization", "idempotency-key") if name in work)
    signed_body = body or None  # an empty body is no body: no digest, nothing to cover
    if signed_body is not None:
        existing = next((v for n, v in headers.items() if n.lower() == "content-digest"), None)
        if existing is not None:
            work["content-digest"] = existing  # the library checks it against the body
        covered.append("content-digest")

    created = int(time.time()) if now is None else now
    url = f"https://{authority}{path}" + (f"?{query}" if query else "")
    message = _Message(method=method.upper(), url=url, headers=work)
    signer = HTTPMessageSigner(
        signature_algorithm=_LIBRARY_ALGORITHMS[key.algorithm],
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key.key_id: key.private_key}),
    )
    signer.sign(
        message,
        key_id=key.key_id,
        created=datetime.fromtimestamp(created, tz=UTC),
        expires=None if expires_in is None else datetime.fromtimestamp(created + expires_in, UTC),
        nonce=nonce,
        label=SIGNATURE_LABEL,
        covered_component_ids=covered,
        body=signed_body,
        use_existing_digest="content-digest" in work,
    )
    added = {"Signature-Input": work["Signature-Input"], "Signature": work["Signature"]}
    if signed_body is not None:
        added = {"Content-Digest": work.get("Content-Digest") or work["content-digest"], **added}
    return added


def sign_grpc_call(
    key: PrivateSigningKey,
    *,
    authority: str,
    method: str,
    headers: Mapping[str, str],
    message: bytes,
    now: int | None = None,
    nonce: str | None = None,
    expires_in: int | None = None,
) -> dict[str, str]:
    """The signature metadata (lowercase names) of one native gRPC call: `@method` POST,
    `@path` the gRPC method path, `@authority` the service's public host, and the serialized
    request message as the body its `content-digest` covers (the bytes the server sees)."""
    added = sign_headers(
        key,
        method="POST",
        authority=authority.lower(),
        path=method,
        query="",
        headers=headers,
        body=message,
        now=now,
        nonce=nonce,
        expires_in=expires_in,
    )
    return {name.lower(): value for name, value in added.items()}


def new_nonce() -> str:
    """128 random bits, base64url: unique per request so the service can refuse replays."""
    return secrets.token_urlsafe(16)


class SigningAuth(httpx.Auth):
    """Signs every request an httpx client sends (sync and async clients alike).

    With `token`, also sets `Authorization: Bearer <token>` when the request has none, so
    the token is covered by the signature.
    """

    requires_request_body = True

    def __init__(
        self,
        key: PrivateSigningKey,
        *,
        token: str | None = None,
        use_nonce: bool = True,
        expires_in: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._token = token
        self._use_nonce = use_nonce
        self._expires_in = expires_in
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is not None and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {self._token}"
        raw_target = request.url.raw_path.decode("ascii")
        path, _, query = raw_target.partition("?")
        request.headers.update(
            sign_headers(
                self._key,
                method=request.method,
                authority=authority_of(request.url),
                path=path,
                query=query,
                headers=dict(request.headers),
                body=request.content,
                now=int(self._clock()),
                nonce=new_nonce() if self._use_nonce else None,
                expires_in=self._expires_in,
            )
        )
        yield request


def authority_of(url: httpx.URL) -> str:
    """host[:port] as RFC 9421 `@authority` wants it: lower-case, default port left out."""
    host = url.raw_host.decode("ascii").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = url.port
    if port is None or port == _DEFAULT_PORTS.get(url.scheme):
        return host
    return f"{host}:{port}"


# grpc ships no type hints, so under `mypy --strict` these bases are Any.
class SigningClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc,unused-ignore]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc,unused-ignore]
):
    """Signs native gRPC calls: `@method` POST, `@path` the gRPC method path, `@authority`
    the service's public host, `authorization` and `idempotency-key` from the call metadata,
    and `content-digest` over the serialized request message (the bytes the server sees).

    Install with `interceptors=signer.channel_interceptors()`, not `[signer]`: grpc.aio files
    each interceptor under the FIRST kind it is an instance of (an if/elif chain in
    `grpc.aio._channel`), so an object that is both kinds would only ever see unary-unary
    calls and server-streaming calls would go out unsigned.
    """

    def __init__(
        self,
        key: PrivateSigningKey,
        *,
        authority: str,
        use_nonce: bool = True,
        expires_in: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._authority = authority.lower()
        self._use_nonce = use_nonce
        self._expires_in = expires_in
        self._clock = clock

    def channel_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """This interceptor for unary calls plus an adapter for server-streaming calls."""
        return [self, _UnaryStreamSigning(self)]

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, SerializableMessage], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: SerializableMessage,
    ) -> Any:
        return await continuation(self._signed(client_call_details, request), request)

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, SerializableMessage], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: SerializableMessage,
    ) -> Any:
        return await continuation(self._signed(client_call_details, request), request)

    def _signed(
        self, details: grpc.aio.ClientCallDetails, request: SerializableMessage
    ) -> grpc.aio.ClientCallDetails:
        """A copy of the call details with signature, signature-input and content-digest."""
        method: str | bytes = details.method
        path = method.decode("ascii") if isinstance(method, bytes) else method
        metadata = grpc.aio.Metadata()
        for name, value in details.metadata or ():
            if name.lower() not in {"signature", "signature-input", "content-digest"}:
                metadata.add(name, value)
        signed = {
            name: value
            for name, value in metadata
            if name.lower() in {"authorization", "idempotency-key"} and isinstance(value, str)
        }
        added = sign_grpc_call(
            self._key,
            authority=self._authority,
            method=path,
            headers=signed,
            message=request.SerializeToString(),
            now=int(self._clock()),
            nonce=new_nonce() if self._use_nonce else None,
            expires_in=self._expires_in,
        )
        for name, value in added.items():
            metadata.add(name, value)
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class _UnaryStreamSigning(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc,unused-ignore]
    """Only a UnaryStreamClientInterceptor, so grpc.aio routes server-streaming calls to it."""

    def __init__(self, signer: SigningClientInterceptor) -> None:
        self._signer = signer

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, SerializableMessage], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: SerializableMessage,
    ) -> Any:
        return await self._signer.intercept_unary_stream(continuation, client_call_details, request)


@dataclass(slots=True)
class _Message:
    """The request-like object (method, url, headers) the signing library works on."""

    method: str
    url: str
    headers: dict[str, str]


def _describe(key: object) -> PrivateSigningKey:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return PrivateSigningKey(key, ED25519, _thumbprint(key))
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return PrivateSigningKey(key, ECDSA_P384_SHA384, _thumbprint(key))
    raise ValueError("Unsupported signing key: use an ECDSA P-384 or an Ed25519 private key")


def _thumbprint(key: PrivateKey) -> str:
    """RFC 7638 JWK thumbprint of the public half (the service computes the same)."""
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    else:
        numbers = public.public_numbers()
        x, y = numbers.x.to_bytes(48, "big"), numbers.y.to_bytes(48, "big")
        jwk = {"crv": "P-384", "kty": "EC", "x": _b64url(x), "y": _b64url(y)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode("ascii")
    return _b64url(hashlib.sha256(canonical).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
