"""The partner SDK signs REST (httpx) and native gRPC calls so that the server accepts them."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from google.protobuf import wrappers_pb2

from client.signing import (
    ECDSA_P384_SHA384,
    ED25519,
    PrivateSigningKey,
    SigningAuth,
    SigningClientInterceptor,
    authority_of,
    generate_key,
    load_private_key,
    private_key_pem,
    public_key_b64,
    sign_headers,
)
from server.adapters.http_signatures import verify_request
from server.adapters.signing_keys import parse_submitted_key
from server.domain.signing_keys import PublicKey
from server.services.ports import SignatureRejected, SignedRequest, VerifiedSignature

NOW = 1_764_000_000
TOKEN = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwYXJ0bmVyIn0.c2lnbmF0dXJl"
IDEMPOTENCY_KEY = "5f0c6a52-8a0e-4b7e-bb1e-2b8f3c9d1e7a"
ROOT = Path(__file__).resolve().parents[2]

# RFC 8037 Appendix A.1 (private key) and A.3 (its JWK thumbprint).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pem(private_key: object, fmt: serialization.PrivateFormat) -> bytes:
    assert hasattr(private_key, "private_bytes")
    pem: bytes = private_key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    )
    return pem


def _keys_of(key: PrivateSigningKey) -> dict[str, PublicKey]:
    public = parse_submitted_key(public_key_b64(key))
    return {public.key_id: public}


def _as_received(request: httpx.Request) -> SignedRequest:
    """What the gateway hands the verifier for this request: raw target, Host, bytes."""
    path, _, query = request.url.raw_path.decode("ascii").partition("?")
    headers = {name.lower(): value for name, value in request.headers.items()}
    return SignedRequest(
        request.method, headers["host"], path, query, headers, request.content or None
    )


@pytest.fixture(scope="module")
def p384() -> PrivateSigningKey:
    return generate_key(ECDSA_P384_SHA384)


@pytest.fixture(scope="module")
def ed() -> PrivateSigningKey:
    return generate_key(ED25519)


# --- keys -------------------------------------------------------------------------------------


def test_client_key_id_is_the_rfc_8037_thumbprint() -> None:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(_b64url_decode(RFC8037_D))

    key = load_private_key(_pem(private, serialization.PrivateFormat.PKCS8))

    assert (key.algorithm, key.key_id) == (ED25519, RFC8037_THUMBPRINT)


@pytest.mark.parametrize(
    "fmt",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
    ids=["pkcs8", "sec1"],
)
def test_p384_private_keys_load_in_either_pem_format(fmt: serialization.PrivateFormat) -> None:
    private = ec.generate_private_key(ec.SECP384R1())

    key = load_private_key(_pem(private, fmt))

    assert key.algorithm == ECDSA_P384_SHA384
    assert key.key_id == parse_submitted_key(public_key_b64(key)).key_id


def test_an_encrypted_private_key_loads_with_its_password(ed: PrivateSigningKey) -> None:
    pem = ed.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )

    assert load_private_key(pem, password=b"s3cret").key_id == ed.key_id


@pytest.mark.parametrize(
    "private_key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(65537, 2048),
    ],
    ids=["p256", "rsa"],
)
def test_keys_the_service_would_refuse_are_refused_when_loading(private_key: object) -> None:
    with pytest.raises(ValueError, match="P-384 or an Ed25519"):
        load_private_key(_pem(private_key, serialization.PrivateFormat.PKCS8))


def test_generating_an_unsupported_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="Unsupported algorithm 'ecdsa-p256-sha256'"):
        generate_key("ecdsa-p256-sha256")


def test_stored_private_key_pem_loads_back_to_the_same_key(p384: PrivateSigningKey) -> None:
    assert load_private_key(private_key_pem(p384)).key_id == p384.key_id


def test_public_key_b64_is_base64_of_a_pem_spki(p384: PrivateSigningKey) -> None:
    pem = base64.b64decode(public_key_b64(p384), validate=True)

    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    loaded = serialization.load_pem_public_key(pem)
    ours = p384.private_key.public_key()
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    assert isinstance(ours, ec.EllipticCurvePublicKey)
    assert loaded.public_numbers() == ours.public_numbers()


def test_the_private_key_is_not_in_the_repr(p384: PrivateSigningKey) -> None:
    assert "private_key" not in repr(p384)


# --- sign_headers -----------------------------------------------------------------------------


def _covered(signature_input: str) -> list[str]:
    inner = signature_input.split("=(", 1)[1].split(")", 1)[0]
    return [part.strip('"') for part in inner.split(" ") if part]


def test_a_get_without_query_or_body_signs_exactly_method_authority_path_authorization(
    p384: PrivateSigningKey,
) -> None:
    added = sign_headers(
        p384,
        method="GET",
        authority="api.example.com",
        path="/v1/customers/cus_1",
        query="",
        headers={"Authorization": TOKEN, "Accept": "application/json"},
        body=None,
        now=NOW,
    )

    assert set(added) == {"Signature-Input", "Signature"}
    assert _covered(added["Signature-Input"]) == ["@method", "@authority", "@path", "authorization"]
    assert f"created={NOW};" in added["Signature-Input"]
    assert f'keyid="{p384.key_id}";alg="ecdsa-p384-sha384"' in added["Signature-Input"]


def test_a_post_with_query_body_and_idempotency_key_signs_all_of_them(
    ed: PrivateSigningKey,
) -> None:
    added = sign_headers(
        ed,
        method="POST",
        authority="api.example.com",
        path="/v1/customers",
        query="dryRun=true",
        headers={"authorization": TOKEN, "IDEMPOTENCY-KEY": IDEMPOTENCY_KEY},
        body=b"{}",
        now=NOW,
        nonce="n-1",
        expires_in=30,
    )

    assert list(added) == ["Content-Digest", "Signature-Input", "Signature"]
    assert added["Content-Digest"] == "sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:"
    assert _covered(added["Signature-Input"]) == [
        "@method",
        "@authority",
        "@path",
        "@query",
        "authorization",
        "idempotency-key",
        "content-digest",
    ]
    assert f';expires={NOW + 30};nonce="n-1"' in added["Signature-Input"]


def test_an_empty_body_is_no_body_so_no_digest_is_added(ed: PrivateSigningKey) -> None:
    added = sign_headers(
        ed,
        method="DELETE",
        authority="api.example.com",
        path="/auth/signing/k1",
        query="",
        headers={"Authorization": TOKEN, "Idempotency-Key": IDEMPOTENCY_KEY},
        body=b"",
        now=NOW,
    )

    assert "Content-Digest" not in added
    assert "content-digest" not in _covered(added["Signature-Input"])


def test_signing_does_not_modify_the_callers_headers(ed: PrivateSigningKey) -> None:
    headers = {"Authorization": TOKEN}

    sign_headers(
        ed, method="PUT", authority="h", path="/x", query="", headers=headers, body=b"1", now=NOW
    )

    assert headers == {"Authorization": TOKEN}


def test_a_target_with_characters_rfc_3986_forbids_is_refused_at_signing(
    ed: PrivateSigningKey,
) -> None:
    with pytest.raises(Exception, match="Invalid URL"):
        sign_headers(
            ed, method="GET", authority="h", path="/a b", query="", headers={}, body=None, now=NOW
        )


# --- httpx ------------------------------------------------------------------------------------


def test_signing_auth_requests_verify_on_the_server_side(p384: PrivateSigningKey) -> None:
    seen: list[VerifiedSignature] = []
    keys = _keys_of(p384)

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(verify_request(_as_received(request), lambda key_id: keys.get(key_id), now=NOW))
        return httpx.Response(200, json={})

    auth = SigningAuth(p384, token=TOKEN.removeprefix("Bearer "), clock=lambda: NOW)
    with httpx.Client(
        transport=httpx.MockTransport(gateway), base_url="https://API.Example.com", auth=auth
    ) as client:
        client.get("/v1/customers", params={"pageSize": 10, "status": "active"})
        client.post(
            "/v1/customers",
            json={"externalId": "u-1"},
            headers={"Idempotency-Key": IDEMPOTENCY_KEY},
        )
        client.delete("/auth/signing/abc%2Fdef", headers={"Idempotency-Key": IDEMPOTENCY_KEY})

    assert [v.key_id for v in seen] == [p384.key_id] * 3
    nonces = [v.nonce for v in seen]
    assert all(nonces) and len(set(nonces)) == 3


async def test_signing_auth_works_with_the_async_client(ed: PrivateSigningKey) -> None:
    keys = _keys_of(ed)
    received: list[httpx.Request] = []

    async def gateway(request: httpx.Request) -> httpx.Response:
        await request.aread()
        received.append(request)
        verify_request(_as_received(request), lambda key_id: keys.get(key_id), now=NOW)
        return httpx.Response(204)

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(gateway),
        base_url="http://localhost:8080",
        auth=SigningAuth(ed, clock=lambda: NOW),
        headers={"Authorization": TOKEN},
    ) as client:
        response = await client.put("/auth/signing", content=b'{"publicKey":"..."}')

    assert response.status_code == 204
    assert received[0].headers["host"] == "localhost:8080"
    assert "content-digest" in received[0].headers


def test_signing_auth_keeps_an_explicit_authorization_header(ed: PrivateSigningKey) -> None:
    request = httpx.Request("GET", "https://h/x", headers={"Authorization": "Bearer mine"})

    flow = SigningAuth(ed, token="other", clock=lambda: NOW).sync_auth_flow(request)
    signed = next(flow)

    assert signed.headers["authorization"] == "Bearer mine"


def test_signing_auth_without_nonce_sends_none(ed: PrivateSigningKey) -> None:
    request = httpx.Request("GET", "https://h/x", headers={"Authorization": TOKEN})

    signed = next(SigningAuth(ed, use_nonce=False, clock=lambda: NOW).sync_auth_flow(request))

    assert "nonce=" not in signed.headers["signature-input"]


def test_a_tampered_httpx_request_is_rejected(ed: PrivateSigningKey) -> None:
    request = httpx.Request("POST", "https://h/v1/customers", json={"a": 1})
    signed = next(SigningAuth(ed, token="t", clock=lambda: NOW).sync_auth_flow(request))
    received = _as_received(signed)
    tampered = SignedRequest(
        received.method,
        received.authority,
        received.path,
        received.query,
        received.headers,
        b'{"a":2}',
    )

    with pytest.raises(SignatureRejected) as caught:
        verify_request(tampered, lambda key_id: _keys_of(ed).get(key_id), now=NOW)

    assert caught.value.reason == "DIGEST_MISMATCH"


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("https://API.Example.COM:443/x", "api.example.com"),
        ("http://example.com:80/x", "example.com"),
        ("https://example.com:8443/x", "example.com:8443"),
        ("http://127.0.0.1:50051/x", "127.0.0.1:50051"),
        ("http://[::1]:8080/x", "[::1]:8080"),
        ("https://bücher.example/x", "xn--bcher-kva.example"),
    ],
)
def test_authority_is_lowercase_with_the_default_port_left_out(url: str, authority: str) -> None:
    assert authority_of(httpx.URL(url)) == authority
    assert httpx.Request("GET", url).headers["host"].lower() == authority


# --- gRPC -------------------------------------------------------------------------------------

PUBLIC_AUTHORITY = "api.example.com"


class _VerifyingServer:
    """A grpc.aio server whose handlers verify the raw request bytes, as the interceptor will."""

    def __init__(self, keys: dict[str, PublicKey]) -> None:
        self.keys = keys
        self.metadata: list[dict[str, str]] = []

    def _verify(self, raw: bytes, context: grpc.aio.ServicerContext, method: str) -> bytes:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        self.metadata.append(metadata)
        request = SignedRequest("POST", PUBLIC_AUTHORITY, method, "", metadata, raw)
        verified = verify_request(request, lambda key_id: self.keys.get(key_id), now=NOW)
        return verified.key_id.encode()

    async def unary(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            return self._verify(raw, context, "/test.v1.Echo/Unary")
        except SignatureRejected as rejected:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, rejected.message)
            raise

    async def stream(self, raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        yield self._verify(raw, context, "/test.v1.Echo/Stream")


async def _start(handler: _VerifyingServer) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.v1.Echo",
                {
                    "Unary": grpc.unary_unary_rpc_method_handler(handler.unary),
                    "Stream": grpc.unary_stream_rpc_method_handler(handler.stream),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_grpc_calls_signed_by_the_interceptor_verify_on_the_server(
    p384: PrivateSigningKey,
) -> None:
    handler = _VerifyingServer(_keys_of(p384))
    server, port = await _start(handler)
    interceptor = SigningClientInterceptor(p384, authority="API.example.com", clock=lambda: NOW)
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=interceptor.channel_interceptors()
        ) as channel:
            unary = channel.unary_unary(
                "/test.v1.Echo/Unary",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
            stream = channel.unary_stream(
                "/test.v1.Echo/Stream",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
            metadata = (("authorization", TOKEN), ("idempotency-key", IDEMPOTENCY_KEY))
            answer = await unary(wrappers_pb2.StringValue(value="cus_1"), metadata=metadata)
            streamed = [
                item
                async for item in stream(
                    wrappers_pb2.StringValue(value="x"), metadata=(("authorization", TOKEN),)
                )
            ]
            empty = await unary(wrappers_pb2.StringValue(), metadata=(("authorization", TOKEN),))
    finally:
        await server.stop(None)

    assert answer == streamed[0] == empty == p384.key_id.encode()
    first, _, last = handler.metadata
    assert _covered(first["signature-input"]) == [
        "@method",
        "@authority",
        "@path",
        "authorization",
        "idempotency-key",
        "content-digest",
    ]
    assert "content-digest" not in last  # an empty message serializes to no bytes: no body


async def test_installing_the_interceptor_bare_would_leave_streaming_calls_unsigned(
    ed: PrivateSigningKey,
) -> None:
    """Pins the grpc.aio quirk behind `channel_interceptors()`; if this starts failing, grpc
    has fixed it and a bare `[signer]` would do."""
    handler = _VerifyingServer(_keys_of(ed))
    server, port = await _start(handler)
    signer = SigningClientInterceptor(ed, authority=PUBLIC_AUTHORITY, clock=lambda: NOW)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=[signer]) as channel:
            stream = channel.unary_stream(
                "/test.v1.Echo/Stream",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
            with pytest.raises(grpc.aio.AioRpcError):
                async for _ in stream(wrappers_pb2.StringValue(value="x")):
                    pass
    finally:
        await server.stop(None)

    assert "signature" not in handler.metadata[0]


async def test_a_grpc_call_signed_for_another_authority_is_refused(ed: PrivateSigningKey) -> None:
    handler = _VerifyingServer(_keys_of(ed))
    server, port = await _start(handler)
    interceptor = SigningClientInterceptor(ed, authority="evil.example.com", clock=lambda: NOW)
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=interceptor.channel_interceptors()
        ) as channel:
            unary = channel.unary_unary(
                "/test.v1.Echo/Unary",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unary(
                    wrappers_pb2.StringValue(value="a"), metadata=(("authorization", TOKEN),)
                )
    finally:
        await server.stop(None)

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "does not verify" in (caught.value.details() or "")


async def test_the_interceptor_replaces_stale_signature_metadata(ed: PrivateSigningKey) -> None:
    interceptor = SigningClientInterceptor(ed, authority=PUBLIC_AUTHORITY, clock=lambda: NOW)
    captured: list[grpc.aio.ClientCallDetails] = []

    async def continuation(details: grpc.aio.ClientCallDetails, request: object) -> str:
        captured.append(details)
        return "called"

    details = grpc.aio.ClientCallDetails(
        method="/test.v1.Echo/Unary",
        timeout=5.0,
        metadata=grpc.aio.Metadata(("authorization", TOKEN), ("signature", "sig1=:AAAA:")),
        credentials=None,
        wait_for_ready=None,
    )

    result = await interceptor.intercept_unary_unary(
        continuation, details, wrappers_pb2.StringValue(value="v")
    )

    sent = captured[0]
    assert result == "called"
    assert sent.timeout == 5.0 and sent.method == "/test.v1.Echo/Unary"
    assert sent.metadata is not None
    assert len(sent.metadata.get_all("signature")) == 1
    assert sent.metadata["signature"] != "sig1=:AAAA:"


# --- packaging --------------------------------------------------------------------------------


def test_the_client_sdk_never_imports_the_server() -> None:
    code = (
        "import sys, client.signing; "
        "leaked = sorted(m for m in sys.modules if m == 'server' or m.startswith('server.')); "
        "print(leaked); sys.exit(1 if leaked else 0)"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
