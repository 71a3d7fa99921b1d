"""RFC 9421 request signatures and RFC 9530 digests, as the server verifies them.

Three kinds of evidence: the RFC 9421 Appendix B vectors (signature bases and the
deterministic Ed25519 and HMAC signatures), an independent signer written here from the RFC
text with `cryptography` alone (interop without the library on the signing side), and one
rejection test per reason code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, MappingKeyResolver
from http_message_signatures import algorithms as lib_algorithms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.signing import PrivateSigningKey, generate_key, public_key_b64, sign_headers
from server.adapters.http_signatures import RequestSignatureVerifier, verify_request
from server.adapters.signing_keys import parse_submitted_key
from server.domain.signing_keys import PublicKey
from server.services.ports import (
    ALGORITHM_MISMATCH,
    DIGEST_MALFORMED,
    DIGEST_MISMATCH,
    DIGEST_MISSING,
    DIGEST_UNSUPPORTED,
    REASONS,
    SIGNATURE_COMPONENTS_MISSING,
    SIGNATURE_EXPIRED,
    SIGNATURE_INVALID,
    SIGNATURE_MALFORMED,
    SIGNATURE_MISSING,
    SIGNATURE_NOT_YET_VALID,
    UNKNOWN_KEY,
    KeyResolver,
    SignatureRejected,
    SignedRequest,
    VerifiedSignature,
)

NOW = 1_764_000_000
AUTHORITY = "api.example.com"
TOKEN = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwYXJ0bmVyIn0.c2lnbmF0dXJl"
IDEMPOTENCY_KEY = "0b8f6c1e-3a52-4c1e-9f1d-6f2a8e7b5c40"
BODY = (
    b'{"externalId":"user-42",'
    b'"blockchainAccountId":"eip155:1:0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb"}'
)

# ---------------------------------------------------------------------------------------------
# RFC 9421 Appendix B material
# ---------------------------------------------------------------------------------------------

RFC_ED25519_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_ED25519_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
RFC_SHARED_SECRET = base64.b64decode(
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
)
RFC_CREATED = 1618884473
RFC_BODY = b'{"hello": "world"}'
RFC_DIGEST = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+"
    "AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)
RFC_HEADERS = {
    "host": "example.com",
    "date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "content-type": "application/json",
    "content-digest": RFC_DIGEST,
    "content-length": "18",
}
RFC_B21_BASE = (
    '"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss"'
    ';nonce="b3k2pp5k7z-50gnwp.yemd"'
)
RFC_B22_BASE = (
    '"@authority": example.com\n'
    f'"content-digest": {RFC_DIGEST}\n'
    '"@query-param";name="Pet": dog\n'
    '"@signature-params": ("@authority" "content-digest" "@query-param";name="Pet")'
    ';created=1618884473;keyid="test-key-rsa-pss";tag="header-example"'
)
RFC_B23_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@query": ?param=Value&Pet=dog\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    f'"content-digest": {RFC_DIGEST}\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@query" "@authority" "content-type" '
    '"content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"'
)
B23_COMPONENTS = (
    "date",
    "@method",
    "@path",
    "@query",
    "@authority",
    "content-type",
    "content-digest",
    "content-length",
)
RFC_B25_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"@signature-params": ("date" "@authority" "content-type");created=1618884473'
    ';keyid="test-shared-secret"'
)
RFC_B25_SIGNATURE = "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8="
RFC_B26_INPUT = (
    '("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    f'"@signature-params": {RFC_B26_INPUT}'
)
RFC_B26_SIGNATURE = (
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
)


class _LibraryMessage:
    """The request-like object http-message-signatures works on (method, url, headers)."""

    def __init__(self, method: str, url: str, headers: Mapping[str, str]) -> None:
        self.method = method
        self.url = url
        self.headers = dict(headers)


def _rfc_message(headers: Mapping[str, str] = RFC_HEADERS) -> _LibraryMessage:
    return _LibraryMessage("POST", "https://example.com/foo?param=Value&Pet=dog", headers)


def _rfc_request(signature_input: str, signature: str) -> SignedRequest:
    headers = dict(RFC_HEADERS) | {"signature-input": signature_input, "signature": signature}
    return SignedRequest("POST", "example.com", "/foo", "param=Value&Pet=dog", headers, RFC_BODY)


# ---------------------------------------------------------------------------------------------
# An independent signer: RFC 9421 section 2.5 by hand, `cryptography` for the maths
# ---------------------------------------------------------------------------------------------


def signature_base(components: list[tuple[str, str]], signature_params: str) -> bytes:
    """RFC 9421 section 2.5: one `"name": value` line per component, then @signature-params."""
    lines = [f"{name}: {value}" for name, value in components]
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def independent_sign(
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    key_id: str,
    *,
    method: str = "POST",
    authority: str = AUTHORITY,
    path: str = "/v1/customers",
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = BODY,
    created: int = NOW,
    components: list[str] | None = None,
    extra_params: str = "",
    alg: str | None = "default",
    der: bool = False,
    label: str = "partner",
    content_digest: str | None = None,
) -> SignedRequest:
    """Sign like a partner who read only the RFCs; returns the request the server receives."""
    sent = {"authorization": TOKEN, "idempotency-key": IDEMPOTENCY_KEY} if headers is None else {}
    sent |= {name.lower(): value for name, value in (headers or {}).items()}
    if body:
        sha256 = f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"
        sent["content-digest"] = content_digest or sha256
    derived = {"@method": method, "@authority": authority, "@path": path, "@query": f"?{query}"}
    if components is None:
        components = ["@method", "@authority", "@path"] + (["@query"] if query else [])
        components += [
            n for n in ("authorization", "idempotency-key", "content-digest") if n in sent
        ]
    values = [
        (f'"{name}"', derived[name] if name in derived else sent[name]) for name in components
    ]
    is_ec = isinstance(private_key, ec.EllipticCurvePrivateKey)
    if alg == "default":
        alg = "ecdsa-p384-sha384" if is_ec else "ed25519"
    params = "(" + " ".join(f'"{name}"' for name in components) + ")"
    params += f';created={created};keyid="{key_id}"' + (f';alg="{alg}"' if alg else "")
    params += extra_params
    base = signature_base(values, params)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        signature = private_key.sign(base, ec.ECDSA(hashes.SHA384()))
        if not der:  # RFC 9421 section 3.3.5: the raw r||s, 48 bytes each, not DER
            r, s = decode_dss_signature(signature)
            signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    else:
        signature = private_key.sign(base)
    sent["signature-input"] = f"{label}={params}"
    sent["signature"] = f"{label}=:{_b64(signature)}:"
    return SignedRequest(method, authority, path, query, sent, body)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers for the SDK-signed path
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p384() -> PrivateSigningKey:
    return generate_key("ecdsa-p384-sha384")


@pytest.fixture(scope="module")
def ed() -> PrivateSigningKey:
    return generate_key("ed25519")


def registered(key: PrivateSigningKey) -> PublicKey:
    return parse_submitted_key(public_key_b64(key))


def resolver(*keys: PrivateSigningKey | PublicKey) -> KeyResolver:
    """A partner's live keys, as the store would resolve them."""
    table = {}
    for key in keys:
        public = registered(key) if isinstance(key, PrivateSigningKey) else key
        table[public.key_id] = public
    return lambda key_id: table.get(key_id)


def sdk_request(
    key: PrivateSigningKey,
    *,
    method: str = "POST",
    authority: str = AUTHORITY,
    path: str = "/v1/customers",
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = BODY,
    created: int = NOW,
    nonce: str | None = None,
    expires_in: int | None = None,
) -> SignedRequest:
    sent = dict(
        {"Authorization": TOKEN, "Idempotency-Key": IDEMPOTENCY_KEY} if headers is None else headers
    )
    added = sign_headers(
        key,
        method=method,
        authority=authority,
        path=path,
        query=query,
        headers=sent,
        body=body,
        now=created,
        nonce=nonce,
        expires_in=expires_in,
    )
    lowered = {name.lower(): value for name, value in (sent | added).items()}
    return SignedRequest(method, authority, path, query, lowered, body)


def with_headers(request: SignedRequest, **changes: str | None) -> SignedRequest:
    headers = dict(request.headers)
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return _replace(request, headers=headers)


def _replace(request: SignedRequest, **changes: object) -> SignedRequest:
    fields: dict[str, object] = {
        "method": request.method,
        "authority": request.authority,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
        "body": request.body,
    } | changes
    return SignedRequest(**fields)  # type: ignore[arg-type]


def rejection(request: SignedRequest, keys: KeyResolver, *, now: int = NOW) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as caught:
        verify_request(request, keys, now=now)
    assert caught.value.reason in REASONS
    return caught.value


# ---------------------------------------------------------------------------------------------
# RFC 9421 Appendix B
# ---------------------------------------------------------------------------------------------


def test_hand_built_signature_base_matches_rfc_b26_and_signs_to_the_published_signature() -> None:
    components = ["date", "@method", "@path", "@authority", "content-type", "content-length"]
    derived = {"@method": "POST", "@path": "/foo", "@authority": "example.com"}
    values = [(f'"{c}"', derived.get(c) or RFC_HEADERS[c]) for c in components]

    base = signature_base(values, RFC_B26_INPUT)
    private = serialization.load_pem_private_key(RFC_ED25519_PRIVATE, password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)

    assert base.decode() == RFC_B26_BASE
    assert _b64(private.sign(base)) == RFC_B26_SIGNATURE  # Ed25519 is deterministic


def test_hand_built_signature_bases_match_rfc_b23_and_b25() -> None:
    derived = {"@method": "POST", "@path": "/foo", "@query": "?param=Value&Pet=dog"}
    derived["@authority"] = "example.com"
    b23 = ["date", "@method", "@path", "@query", "@authority", "content-type"]
    b23 += ["content-digest", "content-length"]
    b23_params = "(" + " ".join(f'"{c}"' for c in b23) + ")"
    b23_params += f';created={RFC_CREATED};keyid="test-key-rsa-pss"'
    b25 = ["date", "@authority", "content-type"]
    b25_params = (
        '("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
    )

    b23_base = signature_base(
        [(f'"{c}"', derived.get(c) or RFC_HEADERS[c]) for c in b23], b23_params
    )
    b25_base = signature_base(
        [(f'"{c}"', derived.get(c) or RFC_HEADERS[c]) for c in b25], b25_params
    )

    assert b23_base.decode() == RFC_B23_BASE
    assert b25_base.decode() == RFC_B25_BASE
    assert _b64(hmac.digest(RFC_SHARED_SECRET, b25_base, "sha256")) == RFC_B25_SIGNATURE


@pytest.mark.parametrize(
    ("components", "params", "expected"),
    [
        ((), {"nonce": "b3k2pp5k7z-50gnwp.yemd", "key_id": "test-key-rsa-pss"}, RFC_B21_BASE),
        (
            ("@authority", "content-digest", '"@query-param";name="Pet"'),
            {"tag": "header-example", "key_id": "test-key-rsa-pss"},
            RFC_B22_BASE,
        ),
        (
            B23_COMPONENTS,
            {"key_id": "test-key-rsa-pss"},
            RFC_B23_BASE,
        ),
        (("date", "@authority", "content-type"), {"key_id": "test-shared-secret"}, RFC_B25_BASE),
        (
            ("date", "@method", "@path", "@authority", "content-type", "content-length"),
            {"key_id": "test-key-ed25519"},
            RFC_B26_BASE,
        ),
    ],
    ids=["B.2.1", "B.2.2", "B.2.3", "B.2.5", "B.2.6"],
)
def test_library_builds_the_rfc_appendix_b_signature_bases(
    components: tuple[str, ...], params: dict[str, str], expected: str
) -> None:
    signer = HTTPMessageSigner(signature_algorithm=lib_algorithms.ED25519)

    prepared = signer.prepare(
        _rfc_message(),
        created=datetime.fromtimestamp(RFC_CREATED, UTC),
        include_alg=False,
        covered_component_ids=components,
        use_existing_digest=True,
        **params,  # type: ignore[arg-type]
    )

    assert prepared.signature_base.decode() == expected


def test_library_verifies_the_published_rfc_b26_ed25519_signature() -> None:
    verifier = HTTPMessageVerifier(
        signature_algorithm=lib_algorithms.ED25519,
        key_resolver=MappingKeyResolver(
            public_keys={"test-key-ed25519": RFC_ED25519_PUBLIC}, private_keys={}
        ),
    )
    message = _rfc_message(
        RFC_HEADERS
        | {
            "signature-input": f"sig-b26={RFC_B26_INPUT}",
            "signature": f"sig-b26=:{RFC_B26_SIGNATURE}:",
        }
    )

    (result,) = verifier.verify(message, max_age=None)

    assert result.parameters["keyid"] == "test-key-ed25519"


def test_the_published_rfc_b26_signature_is_refused_for_its_thin_coverage() -> None:
    rfc_key = parse_submitted_key(base64.b64encode(RFC_ED25519_PUBLIC).decode())
    request = _rfc_request(f"sig-b26={RFC_B26_INPUT}", f"sig-b26=:{RFC_B26_SIGNATURE}:")

    error = rejection(
        request,
        lambda key_id: rfc_key if key_id == "test-key-ed25519" else None,
        now=RFC_CREATED,
    )

    assert error.reason == SIGNATURE_COMPONENTS_MISSING
    assert error.message == (
        "Signature does not cover required components '@query', 'content-digest', 'authorization'"
    )


def test_rfc_b2_request_content_digest_sha512_matches_its_body() -> None:
    expected = base64.b64decode(RFC_DIGEST.removeprefix("sha-512=:").removesuffix(":"))
    assert hashlib.sha512(RFC_BODY).digest() == expected


# ---------------------------------------------------------------------------------------------
# Interop: the independent signer and the SDK both verify
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ecdsa-p384-sha384", "ed25519"])
def test_a_request_signed_from_the_rfc_text_alone_verifies(algorithm: str) -> None:
    key = generate_key(algorithm)

    request = independent_sign(key.private_key, key.key_id, query="page=2&size=10")
    verified = verify_request(request, resolver(key), now=NOW)

    assert verified == VerifiedSignature(key.key_id, algorithm, NOW, None, None)


def test_an_independent_signature_without_the_optional_alg_parameter_verifies(
    p384: PrivateSigningKey,
) -> None:
    request = independent_sign(p384.private_key, p384.key_id, alg=None)

    assert verify_request(request, resolver(p384), now=NOW).key_id == p384.key_id


def test_sdk_signature_base_is_the_one_the_rfc_text_describes(p384: PrivateSigningKey) -> None:
    request = sdk_request(p384, query="q=a%20b", nonce="n-1")
    signature_input = request.headers["signature-input"]
    params = signature_input.split("=", 1)[1]
    values = [
        ('"@method"', "POST"),
        ('"@authority"', AUTHORITY),
        ('"@path"', "/v1/customers"),
        ('"@query"', "?q=a%20b"),
        ('"authorization"', TOKEN),
        ('"idempotency-key"', IDEMPOTENCY_KEY),
        ('"content-digest"', request.headers["content-digest"]),
    ]
    raw = base64.b64decode(request.headers["signature"].split("=:", 1)[1].rstrip(":"))
    public = p384.private_key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)

    assert params == (
        '("@method" "@authority" "@path" "@query" "authorization" "idempotency-key" '
        f'"content-digest");created={NOW};keyid="{p384.key_id}";alg="ecdsa-p384-sha384";'
        'nonce="n-1"'
    )
    assert len(raw) == 96  # raw r||s, RFC 9421 section 3.3.5
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    public.verify(der, signature_base(values, params), ec.ECDSA(hashes.SHA384()))


@pytest.mark.parametrize("algorithm", ["ecdsa-p384-sha384", "ed25519"])
def test_sdk_signed_requests_verify_for_every_request_shape(algorithm: str) -> None:
    key = generate_key(algorithm)
    keys = resolver(key)
    shapes = [
        sdk_request(key, method="GET", body=None, headers={"Authorization": TOKEN}),
        sdk_request(
            key,
            method="GET",
            body=b"",
            query="status=active&pageSize=50",
            headers={"Authorization": TOKEN},
        ),
        sdk_request(key, method="DELETE", path="/auth/signing/abc", body=None),
        sdk_request(key, method="PATCH", path="/v1/customers/cus_1", body=b'{"a":1}'),
        sdk_request(key, nonce="abc", expires_in=30),
    ]

    for request in shapes:
        verified = verify_request(request, keys, now=NOW)
        assert verified.key_id == key.key_id
        assert verified.algorithm == algorithm


def test_the_verified_result_carries_nonce_and_expiry(ed: PrivateSigningKey) -> None:
    request = sdk_request(ed, nonce="n0nce", expires_in=120)

    assert verify_request(request, resolver(ed), now=NOW) == VerifiedSignature(
        ed.key_id, "ed25519", NOW, "n0nce", NOW + 120
    )


def test_raw_percent_encoded_path_is_verified_as_sent_not_decoded(ed: PrivateSigningKey) -> None:
    request = sdk_request(ed, path="/v1/customers/a%2Fb/..%2Fc", query="x=%7E&y=a+b")

    assert verify_request(request, resolver(ed), now=NOW).key_id == ed.key_id
    decoded = _replace(request, path="/v1/customers/a/b/../c")
    assert rejection(decoded, resolver(ed)).reason == SIGNATURE_INVALID


def test_grpc_shaped_request_verifies_over_the_serialized_message(ed: PrivateSigningKey) -> None:
    serialized = b"\n\x07cus_123"
    request = sdk_request(
        ed,
        path="/customers.v1.CustomerService/GetCustomer",
        body=serialized,
        headers={"authorization": TOKEN},
    )

    assert verify_request(request, resolver(ed), now=NOW).key_id == ed.key_id


def test_either_of_a_partners_two_live_keys_verifies(
    p384: PrivateSigningKey, ed: PrivateSigningKey
) -> None:
    keys = resolver(p384, ed)

    assert verify_request(sdk_request(p384), keys, now=NOW).key_id == p384.key_id
    assert verify_request(sdk_request(ed), keys, now=NOW).key_id == ed.key_id


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.lists(
        st.text("abcXYZ019-._~!$&'()*+,;=:@%2F", min_size=1, max_size=12), min_size=1, max_size=4
    ).map(lambda parts: "/" + "/".join(parts).replace("%", "%25").replace("%252F", "%2F")),
    query=st.text("abc019-._~!$&'()*+,;=:@/?%20", max_size=30).map(
        lambda q: q.replace("%", "%25").replace("%2520", "%20")
    ),
    body=st.binary(max_size=200),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
)
def test_any_sdk_signed_target_and_body_round_trip(
    ed: PrivateSigningKey, path: str, query: str, body: bytes, method: str
) -> None:
    request = sdk_request(ed, method=method, path=path, query=query, body=body)

    assert verify_request(request, resolver(ed), now=NOW).key_id == ed.key_id
    if body:
        flipped = bytes([body[0] ^ 1]) + body[1:]
        assert rejection(_replace(request, body=flipped), resolver(ed)).reason == DIGEST_MISMATCH


# ---------------------------------------------------------------------------------------------
# One rejection per reason
# ---------------------------------------------------------------------------------------------


def test_unsigned_request_is_rejected_as_signature_missing(p384: PrivateSigningKey) -> None:
    request = with_headers(sdk_request(p384), signature=None, signature_input=None)

    error = rejection(request, resolver(p384))

    assert error.reason == SIGNATURE_MISSING
    assert "Signature and Signature-Input" in error.message


def test_signature_input_without_signature_is_rejected_as_missing(p384: PrivateSigningKey) -> None:
    error = rejection(with_headers(sdk_request(p384), signature=None), resolver(p384))

    assert (error.reason, error.message.count("Signature-Input")) == (SIGNATURE_MISSING, 0)


@pytest.mark.parametrize(
    ("signature_input", "message"),
    [
        ('sig1=("@method" "@path"', "not a valid structured dictionary"),
        ("sig1=@method", "not a valid structured dictionary"),
        ('sig1=("@method");created=1', "keyid' is required"),
        ('sig1=("@method");keyid="k"', "'created' is required"),
        ('sig1=("@method");keyid="k";created="now"', "'created' must be an integer"),
        ('sig1=("@method");keyid=k;created=1', "'keyid' must be a quoted string"),
        ('sig1=("@method");keyid="k";created=?1', "'created' must be an integer"),
        ('sig1=("@method");keyid="k";created=1;foo="x"', "Unsupported signature parameter 'foo'"),
        ('sig1=(@method);keyid="k";created=1', "not a valid structured dictionary"),
        ('sig1=(method);keyid="k";created=1', "must be quoted strings"),
        ('sig1="@method";keyid="k";created=1', "not an inner list"),
        ('sig1=("@method");keyid="k";created=1;nonce=""', "nonce must be 1 to 128"),
        (
            'sig1=("@method");keyid="k";created=1, sig2=("@method");keyid="k";created=1',
            "Exactly one signature",
        ),
        ('other=("@method");keyid="k";created=1', "does not match Signature-Input label"),
        ('sig1=("@method");keyid="k";created=1, sig1=("@path")', "duplicate member"),
        ("sig1=(" + '"x" ' * 1100 + ")", "too long"),
    ],
    ids=lambda value: value[:30] if isinstance(value, str) else None,
)
def test_garbage_signature_input_is_rejected_as_malformed(
    p384: PrivateSigningKey, signature_input: str, message: str
) -> None:
    request = with_headers(
        sdk_request(p384), signature_input=signature_input, signature="sig1=:AAAA:"
    )

    error = rejection(request, resolver(p384))

    assert error.reason == SIGNATURE_MALFORMED
    assert message in error.message


def test_a_signature_that_is_not_a_byte_sequence_is_malformed(p384: PrivateSigningKey) -> None:
    error = rejection(with_headers(sdk_request(p384), signature='sig1="AAAA"'), resolver(p384))

    assert (error.reason, "byte sequence" in error.message) == (SIGNATURE_MALFORMED, True)


def test_a_der_encoded_ecdsa_signature_is_malformed_not_silently_accepted(
    p384: PrivateSigningKey,
) -> None:
    request = independent_sign(p384.private_key, p384.key_id, der=True)

    error = rejection(request, resolver(p384))

    assert error.reason == SIGNATURE_MALFORMED
    assert "96 raw bytes" in error.message and "not DER" in error.message


@pytest.mark.parametrize(
    ("drop", "shape", "missing"),
    [
        ("content-digest", {}, "'content-digest'"),
        ("idempotency-key", {}, "'idempotency-key'"),
        ("authorization", {}, "'authorization'"),
        ("@query", {"query": "page=2"}, "'@query'"),
        ("@authority", {}, "'@authority'"),
        ("@method", {}, "'@method'"),
        ("@path", {}, "'@path'"),
    ],
)
def test_a_signature_missing_a_required_component_is_rejected_naming_it(
    p384: PrivateSigningKey, drop: str, shape: dict[str, str], missing: str
) -> None:
    query = shape.get("query", "")
    full = ["@method", "@authority", "@path"] + (["@query"] if query else [])
    full += ["authorization", "idempotency-key", "content-digest"]
    request = independent_sign(
        p384.private_key, p384.key_id, query=query, components=[c for c in full if c != drop]
    )

    error = rejection(request, resolver(p384))

    assert error.reason == SIGNATURE_COMPONENTS_MISSING
    assert error.message == f"Signature does not cover required component {missing}"


def test_covering_a_component_only_with_parameters_does_not_count(
    p384: PrivateSigningKey,
) -> None:
    request = sdk_request(p384)
    signature_input = request.headers["signature-input"].replace(
        '"content-digest"', '"content-digest";sf'
    )

    error = rejection(with_headers(request, signature_input=signature_input), resolver(p384))

    assert error.message == "Signature does not cover required component 'content-digest'"


def test_a_stale_created_is_rejected_as_expired(p384: PrivateSigningKey) -> None:
    request = sdk_request(p384, created=NOW - 301)

    error = rejection(request, resolver(p384))

    assert error.reason == SIGNATURE_EXPIRED
    assert "'created' is 301 s old; the limit is 300 s" in error.message
    assert verify_request(sdk_request(p384, created=NOW - 300), resolver(p384), now=NOW)


def test_a_created_too_far_in_the_future_is_rejected_as_not_yet_valid(
    p384: PrivateSigningKey,
) -> None:
    error = rejection(sdk_request(p384, created=NOW + 61), resolver(p384))

    assert error.reason == SIGNATURE_NOT_YET_VALID
    assert "61 s in the future" in error.message
    assert verify_request(sdk_request(p384, created=NOW + 60), resolver(p384), now=NOW)


def test_a_passed_expires_is_rejected_as_expired(p384: PrivateSigningKey) -> None:
    request = sdk_request(p384, created=NOW - 20, expires_in=10)

    error = rejection(request, resolver(p384))

    assert error.reason == SIGNATURE_EXPIRED
    assert "'expires' passed 10 s ago" in error.message


def test_a_key_that_is_not_one_of_the_partners_live_keys_is_unknown(
    p384: PrivateSigningKey, ed: PrivateSigningKey
) -> None:
    error = rejection(sdk_request(p384), resolver(ed))

    assert error.reason == UNKNOWN_KEY
    assert p384.key_id in error.message


def test_a_signature_by_a_different_key_under_a_known_key_id_is_invalid(
    p384: PrivateSigningKey,
) -> None:
    impostor = generate_key("ecdsa-p384-sha384")
    request = independent_sign(impostor.private_key, p384.key_id)

    error = rejection(request, resolver(p384))

    assert error.reason == SIGNATURE_INVALID
    assert "does not verify with key" in error.message


def test_the_key_cache_never_trusts_a_key_id_for_different_key_material(
    p384: PrivateSigningKey,
) -> None:
    other = registered(generate_key("ecdsa-p384-sha384"))
    verifier = RequestSignatureVerifier()
    request = sdk_request(p384)
    verifier.verify(request, resolver(p384), now=NOW)  # warms the cache for p384's key id
    swapped = PublicKey(p384.key_id, other.algorithm, other.pem)

    with pytest.raises(SignatureRejected) as caught:
        verifier.verify(request, lambda key_id: swapped, now=NOW)

    assert caught.value.reason == SIGNATURE_INVALID


def test_an_alg_parameter_that_differs_from_the_key_is_a_mismatch(p384: PrivateSigningKey) -> None:
    request = independent_sign(p384.private_key, p384.key_id, alg="ed25519")

    error = rejection(request, resolver(p384))

    assert error.reason == ALGORITHM_MISMATCH
    assert "alg 'ed25519'" in error.message and "ecdsa-p384-sha384" in error.message


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda r: _replace(r, path="/v1/customers/other"), id="path"),
        pytest.param(lambda r: _replace(r, query="page=3"), id="query"),
        pytest.param(lambda r: _replace(r, method="PUT"), id="method"),
        pytest.param(lambda r: _replace(r, authority="evil.example.com"), id="authority"),
        pytest.param(lambda r: with_headers(r, authorization="Bearer other"), id="authorization"),
        pytest.param(
            lambda r: with_headers(r, idempotency_key="9e2c1a70-0000-4000-8000-000000000000"),
            id="idempotency-key",
        ),
        pytest.param(
            lambda r: with_headers(
                _replace(r, body=b"{}"),
                content_digest=f"sha-256=:{_b64(hashlib.sha256(b'{}').digest())}:",
            ),
            id="body-and-digest",
        ),
        pytest.param(
            lambda r: with_headers(
                r,
                signature_input=r.headers["signature-input"].replace(
                    f"created={NOW}", f"created={NOW - 1}"
                ),
            ),
            id="created",
        ),
    ],
)
def test_any_change_to_a_signed_part_of_the_request_is_invalid(
    p384: PrivateSigningKey, tamper: Callable[[SignedRequest], SignedRequest]
) -> None:
    request = tamper(sdk_request(p384, query="page=2"))

    assert rejection(request, resolver(p384)).reason == SIGNATURE_INVALID


def test_a_covered_header_that_is_absent_is_reported_not_crashed(p384: PrivateSigningKey) -> None:
    request = independent_sign(
        p384.private_key,
        p384.key_id,
        headers={"authorization": TOKEN, "x-extra": "1"},
        components=["@method", "@authority", "@path", "authorization", "content-digest", "x-extra"],
    )

    error = rejection(with_headers(request, x_extra=None), resolver(p384))

    assert error.reason == SIGNATURE_MALFORMED
    assert "x-extra" in error.message


@pytest.mark.parametrize(
    ("path", "query"), [("/v1/a b", ""), ("/v1/customers", "ids[]=1"), ("/v1/\u00e9", "")]
)
def test_a_target_with_unencoded_characters_is_rejected_as_malformed_not_crashed(
    ed: PrivateSigningKey, path: str, query: str
) -> None:
    signed = independent_sign(ed.private_key, ed.key_id, path="/v1/x", query="q=1", body=None)

    error = rejection(_replace(signed, path=path, query=query or "q=1"), resolver(ed))

    assert error.reason == SIGNATURE_MALFORMED
    assert "Invalid URL" in error.message


def test_a_body_without_content_digest_is_rejected_as_digest_missing(
    p384: PrivateSigningKey,
) -> None:
    request = with_headers(sdk_request(p384), content_digest=None)

    error = rejection(request, resolver(p384))

    assert (error.reason, error.message) == (
        DIGEST_MISSING,
        "Request has a body but no Content-Digest header",
    )


def test_a_digest_in_an_unsupported_algorithm_only_is_rejected(p384: PrivateSigningKey) -> None:
    md5 = _b64(hashlib.md5(BODY).digest())
    request = with_headers(sdk_request(p384), content_digest=f"md5=:{md5}:")

    error = rejection(request, resolver(p384))

    assert error.reason == DIGEST_UNSUPPORTED
    assert "got md5" in error.message and "sha-256 or sha-512" in error.message


def test_a_tampered_body_is_rejected_as_digest_mismatch(p384: PrivateSigningKey) -> None:
    request = _replace(sdk_request(p384), body=BODY.replace(b"42", b"43"))

    error = rejection(request, resolver(p384))

    assert (error.reason, error.message) == (
        DIGEST_MISMATCH,
        "Content-Digest sha-256 does not match the request body",
    )


@pytest.mark.parametrize(
    "value",
    ["sha-256=AAAA", "sha-256", "sha-256=:not base64:", "sha-256=:AA==:, sha-256=:AA==:"],
)
def test_an_unparseable_content_digest_is_rejected_as_malformed(
    p384: PrivateSigningKey, value: str
) -> None:
    request = with_headers(sdk_request(p384), content_digest=value)

    assert rejection(request, resolver(p384)).reason == DIGEST_MALFORMED


def test_sha512_digest_alongside_an_unknown_algorithm_is_accepted(ed: PrivateSigningKey) -> None:
    digest = f"md5=:AAAA:, sha-512=:{_b64(hashlib.sha512(BODY).digest())}:"
    request = independent_sign(ed.private_key, ed.key_id, content_digest=digest)

    assert verify_request(request, resolver(ed), now=NOW).key_id == ed.key_id


def test_a_caller_supplied_sha512_digest_is_kept_and_signed_by_the_sdk(
    ed: PrivateSigningKey,
) -> None:
    digest = f"sha-512=:{_b64(hashlib.sha512(BODY).digest())}:"
    request = sdk_request(ed, headers={"Authorization": TOKEN, "Content-Digest": digest})

    assert request.headers["content-digest"] == digest
    assert verify_request(request, resolver(ed), now=NOW).key_id == ed.key_id


def test_every_supported_member_of_the_digest_must_match(ed: PrivateSigningKey) -> None:
    good = f"sha-256=:{_b64(hashlib.sha256(BODY).digest())}:"
    bad = f"sha-512=:{_b64(hashlib.sha512(b'other').digest())}:"
    request = with_headers(sdk_request(ed), content_digest=f"{good}, {bad}")

    error = rejection(request, resolver(ed))

    assert (error.reason, "sha-512" in error.message) == (DIGEST_MISMATCH, True)


def test_a_content_digest_on_an_empty_body_is_checked_against_no_bytes(
    ed: PrivateSigningKey,
) -> None:
    request = sdk_request(ed, method="GET", body=None, headers={"Authorization": TOKEN})
    empty = f"sha-256=:{_b64(hashlib.sha256(b'').digest())}:"

    assert verify_request(with_headers(request, content_digest=empty), resolver(ed), now=NOW)
    wrong = with_headers(request, content_digest=f"sha-256=:{_b64(hashlib.sha256(b'x').digest())}:")
    assert rejection(wrong, resolver(ed)).reason == DIGEST_MISMATCH


def test_reason_codes_are_the_documented_set_and_show_in_the_exception_text() -> None:
    assert {
        "SIGNATURE_MISSING",
        "SIGNATURE_MALFORMED",
        "SIGNATURE_COMPONENTS_MISSING",
        "SIGNATURE_EXPIRED",
        "SIGNATURE_NOT_YET_VALID",
        "UNKNOWN_KEY",
        "ALGORITHM_MISMATCH",
        "SIGNATURE_INVALID",
        "NONCE_REPLAYED",
        "DIGEST_MISSING",
        "DIGEST_MALFORMED",
        "DIGEST_UNSUPPORTED",
        "DIGEST_MISMATCH",
    } == REASONS
    error = SignatureRejected(DIGEST_MISMATCH, "Content-Digest sha-256 does not match")
    assert str(error) == "DIGEST_MISMATCH: Content-Digest sha-256 does not match"
