"""The signature base built directly (adapters/signature_base.py) against the library as the
oracle: on random requests both verify what the SDK or the library signed, build the same
base, and refuse any one-byte change; the plain structured-field parser agrees with http_sf;
and what the direct path leaves to the library still verifies, or is refused, as before.
"""

from __future__ import annotations

import base64
import hashlib
import string
from datetime import UTC, datetime
from typing import Any

import http_sf
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    MappingKeyResolver,
    VerifyResult,
)
from http_message_signatures import algorithms as lib_algorithms
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import server.adapters.signature_base as signature_base_module
from client.signing import PrivateSigningKey, generate_key, public_key_b64, sign_headers
from server.adapters.http_signatures import verify_request
from server.adapters.signature_base import signature_base, signature_params
from server.adapters.signature_fields import (
    ParsedSignature,
    _plain_byte_sequence,
    _plain_inner_list,
    parse_signature_fields,
)
from server.adapters.signing_keys import load_verification_key, parse_submitted_key
from server.domain.signing_keys import PublicKey
from server.services.ports import (
    SIGNATURE_INVALID,
    SIGNATURE_MALFORMED,
    SignatureRejected,
    SignedRequest,
)
from tests.unit.test_http_signatures import (
    RFC_B26_BASE,
    RFC_B26_INPUT,
    RFC_B26_SIGNATURE,
    RFC_ED25519_PUBLIC,
)
from tests.unit.test_http_signatures import _LibraryMessage as _LibraryMessage

NOW = 1_764_000_000
TOKEN = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwYXJ0bmVyIn0.c2lnbmF0dXJl"
KEYS = {algorithm: generate_key(algorithm) for algorithm in ("ecdsa-p384-sha384", "ed25519")}
LIBRARY_ALGORITHMS = {
    "ecdsa-p384-sha384": lib_algorithms.ECDSA_P384_SHA384,
    "ed25519": lib_algorithms.ED25519,
}
ORACLE = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _public(key: PrivateSigningKey) -> PublicKey:
    return parse_submitted_key(public_key_b64(key))


def _url(scheme: str, authority: str, path: str, query: str) -> str:
    url = f"{scheme}://{authority}{path}"
    return f"{url}?{query}" if query else url


def library_verify(request: SignedRequest, key: PrivateSigningKey, scheme: str) -> VerifyResult:
    """The oracle: http-message-signatures' own verifier over the same request."""
    verifier = HTTPMessageVerifier(
        signature_algorithm=LIBRARY_ALGORITHMS[key.algorithm],
        key_resolver=MappingKeyResolver(
            public_keys={key.key_id: key.private_key.public_key()}, private_keys={}
        ),
    )
    url = _url(scheme, request.authority, request.path, request.query)
    message = _LibraryMessage(request.method, url, request.headers)
    (result,) = verifier.verify(message, max_age=None)  # `created` is in the past: NOW
    return result


def library_base(result: VerifyResult) -> bytes:
    return "\n".join(f"{k}: {v}" for k, v in result.covered_components.items()).encode()


def direct_base(request: SignedRequest, key: PrivateSigningKey, scheme: str) -> bytes | None:
    parsed = parse_signature_fields(
        request.headers["signature-input"], request.headers["signature"]
    )
    return signature_base(request, parsed, _public(key), scheme)


def ours(request: SignedRequest, key: PrivateSigningKey, scheme: str) -> None:
    public = _public(key)
    verify_request(
        request, lambda key_id: public if key_id == public.key_id else None, now=NOW, scheme=scheme
    )


# --- strategies ---------------------------------------------------------------------------------

_PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
_ESCAPES = st.sampled_from(["%20", "%2F", "%2f", "%7E", "%C3%A9", "%25"])
_segment = st.lists(st.one_of(st.sampled_from(_PCHAR), _ESCAPES), max_size=8).map("".join)
paths = st.lists(_segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
queries = st.one_of(
    st.just(""),
    st.lists(st.one_of(st.sampled_from(_PCHAR + "/?"), _ESCAPES), min_size=1, max_size=20).map(
        "".join
    ),
)
hosts = st.from_regex(
    r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,12}[a-zA-Z0-9])?(\.[a-z0-9]{1,8}){0,2}", fullmatch=True
)
ports = st.sampled_from(["", ":443", ":0443", ":80", ":8080", ":50051"])
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
# Field values as sent: printable ASCII, perhaps padded with whitespace the base trims.
_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)
field_values = st.tuples(
    st.sampled_from(["", " ", "\t", "  "]), _value, st.sampled_from(["", " ", "\t"])
).map("".join)
field_names = st.from_regex(r"x-[a-z0-9-]{1,12}", fullmatch=True)


def _mutated(text: str, data: st.DataObject, *, alphabet: str, lower: bool = False) -> str:
    """`text` with one character changed to another from `alphabet` (a different one even
    after lower-casing, where the base lower-cases), outside percent escapes so that the
    target stays one RFC 3986 allows."""
    positions = [
        i for i, c in enumerate(text) if c in alphabet and "%" not in text[max(i - 2, 0) : i]
    ]
    assume(positions)
    i = data.draw(st.sampled_from(positions), label="position")
    original = text[i].lower() if lower else text[i]
    choice = data.draw(st.sampled_from([c for c in alphabet if c != original]), label="char")
    return text[:i] + choice + text[i + 1 :]


def _replace(request: SignedRequest, **changes: Any) -> SignedRequest:
    fields = {
        "method": request.method,
        "authority": request.authority,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
        "body": request.body,
    }
    return SignedRequest(**(fields | changes))


def mutate_component(request: SignedRequest, component: str, data: st.DataObject) -> SignedRequest:
    alnum = string.ascii_lowercase + string.digits
    if component == "@method":
        method = _mutated(request.method, data, alphabet=string.ascii_uppercase)
        return _replace(request, method=method)
    if component == "@authority":
        host, colon, port = request.authority.partition(":")
        return _replace(
            request, authority=_mutated(host, data, alphabet=alnum, lower=True) + colon + port
        )
    if component == "@path":
        return _replace(request, path=_mutated(request.path, data, alphabet=alnum))
    if component == "@query":
        return _replace(request, query=_mutated(request.query, data, alphabet=alnum))
    value = request.headers[component]
    changed = _mutated(value, data, alphabet=string.ascii_letters + string.digits)
    return _replace(request, headers=dict(request.headers) | {component: changed})


def assert_both_refuse(request: SignedRequest, key: PrivateSigningKey, scheme: str) -> str:
    with pytest.raises(SignatureRejected) as caught:
        ours(request, key, scheme)
    with pytest.raises(HTTPMessageSignaturesException):
        library_verify(request, key, scheme)
    return caught.value.reason


# --- the SDK's requests -------------------------------------------------------------------------


@ORACLE
@given(
    algorithm=st.sampled_from(sorted(KEYS)),
    method=methods,
    host=hosts,
    port=ports,
    path=paths,
    query=queries,
    token=field_values,
    idempotency_key=st.none() | field_values,
    body=st.none() | st.binary(min_size=1, max_size=64),
    nonce=st.none() | st.from_regex(r"[A-Za-z0-9_-]{1,22}", fullmatch=True),
    data=st.data(),
)
def test_sdk_signed_requests_verify_with_us_and_the_library_and_any_change_fails_both(
    algorithm: str,
    method: str,
    host: str,
    port: str,
    path: str,
    query: str,
    token: str,
    idempotency_key: str | None,
    body: bytes | None,
    nonce: str | None,
    data: st.DataObject,
) -> None:
    key = KEYS[algorithm]
    sent = {"authorization": token} | (
        {"idempotency-key": idempotency_key} if idempotency_key else {}
    )
    authority = host + port
    added = sign_headers(
        key,
        method=method,
        authority=authority,
        path=path,
        query=query,
        headers=sent,
        body=body,
        now=NOW,
        nonce=nonce,
    )
    headers = sent | {"user-agent": "hypothesis"} | {k.lower(): v for k, v in added.items()}
    request = SignedRequest(method, authority, path, query, headers, body)

    ours(request, key, "https")  # the SDK addresses https
    result = library_verify(request, key, "https")
    assert direct_base(request, key, "https") == library_base(result)

    covered = [name for name in result.covered_components if name != '"@signature-params"']
    component = data.draw(st.sampled_from(covered), label="component").strip('"')
    reason = assert_both_refuse(mutate_component(request, component, data), key, "https")
    if component != "content-digest":  # a changed digest is refused as a digest mismatch
        assert reason == SIGNATURE_INVALID


@ORACLE
@given(algorithm=st.sampled_from(sorted(KEYS)), host=hosts, port=ports, path=paths)
def test_the_scheme_decides_which_port_is_default_for_us_as_for_the_library(
    algorithm: str, host: str, port: str, path: str
) -> None:
    key = KEYS[algorithm]
    sent = {"authorization": TOKEN}
    authority = host + port
    added = sign_headers(
        key,
        method="GET",
        authority=authority,
        path=path,
        query="",
        headers=sent,
        body=None,
        now=NOW,
    )
    request = SignedRequest(
        "GET", authority, path, "", sent | {k.lower(): v for k, v in added.items()}, None
    )

    for scheme in ("http", "https"):
        try:
            library_verify(request, key, scheme)
        except HTTPMessageSignaturesException:
            assert_both_refuse(request, key, scheme)
        else:
            ours(request, key, scheme)


# --- any plain header fields, in any order, signed by the library -------------------------------


@ORACLE
@given(
    algorithm=st.sampled_from(sorted(KEYS)),
    method=methods,
    path=paths,
    query=queries,
    extra=st.dictionaries(field_names, field_values, max_size=4),
    order=st.randoms(use_true_random=False),
    params=st.fixed_dictionaries(
        {},
        optional={
            "nonce": st.text(
                st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20
            ),
            "tag": st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
        },
    ),
    include_alg=st.booleans(),
    data=st.data(),
)
def test_library_signed_requests_over_any_plain_fields_verify_through_the_direct_base(
    algorithm: str,
    method: str,
    path: str,
    query: str,
    extra: dict[str, str],
    order: Any,
    params: dict[str, Any],
    include_alg: bool,
    data: st.DataObject,
) -> None:
    key = KEYS[algorithm]
    headers = {"authorization": TOKEN, "content-type": "application/json"} | extra
    components = ["@method", "@authority", "@path", *(["@query"] if query else []), *headers]
    order.shuffle(components)
    message = _LibraryMessage(method, _url("https", "api.example.com", path, query), headers)
    HTTPMessageSigner(
        signature_algorithm=LIBRARY_ALGORITHMS[algorithm],
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key.key_id: key.private_key}),
    ).sign(
        message,
        key_id=key.key_id,
        created=datetime.fromtimestamp(NOW, UTC),
        label="partner",
        covered_component_ids=components,
        include_alg=include_alg,
        **params,
    )
    received = {name.lower(): value for name, value in message.headers.items()}
    request = SignedRequest(method, "api.example.com", path, query, received, None)

    ours(request, key, "https")
    result = library_verify(request, key, "https")
    assert direct_base(request, key, "https") == library_base(result)

    component = data.draw(st.sampled_from(components), label="component")
    reason = assert_both_refuse(mutate_component(request, component, data), key, "https")
    assert reason == SIGNATURE_INVALID


def test_a_signature_input_spelled_with_extra_spaces_verifies_as_the_library_reads_it() -> None:
    key = KEYS["ed25519"]
    sent = {"authorization": TOKEN}
    added = sign_headers(
        key, method="GET", authority="h", path="/x", query="", headers=sent, body=None, now=NOW
    )
    spelled = added["Signature-Input"].replace(" ", "   ").replace("(", "( ").replace(";", "; ")
    headers = sent | {"signature": added["Signature"], "signature-input": f" {spelled} "}
    request = SignedRequest("GET", "h", "/x", "", headers, None)

    assert _plain_inner_list(headers["signature-input"]) is None  # so http_sf parsed it
    ours(request, key, "https")
    assert direct_base(request, key, "https") == library_base(library_verify(request, key, "https"))


# --- the RFC's own vector through the direct base -----------------------------------------------


def test_the_direct_base_of_the_rfc_b26_request_is_the_published_base_and_verifies() -> None:
    headers = {
        "date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "content-type": "application/json",
        "content-length": "18",
        "signature-input": f"sig-b26={RFC_B26_INPUT}",
        "signature": f"sig-b26=:{RFC_B26_SIGNATURE}:",
    }
    request = SignedRequest("POST", "example.com", "/foo", "param=Value&Pet=dog", headers, None)
    parsed_key = parse_submitted_key(base64.b64encode(RFC_ED25519_PUBLIC).decode())
    public = PublicKey("test-key-ed25519", parsed_key.algorithm, parsed_key.pem)
    parsed = parse_signature_fields(headers["signature-input"], headers["signature"])

    base = signature_base(request, parsed, public, "https")

    assert base is not None and base.decode() == RFC_B26_BASE
    loaded = load_verification_key(public)
    assert isinstance(loaded, ed25519.Ed25519PublicKey)
    signature_base_module.check_signature(request, parsed, public, loaded, "https")


# --- what is left to the library ----------------------------------------------------------------


def _library_signed(key: PrivateSigningKey, components: list[str], **headers: str) -> SignedRequest:
    sent = {"authorization": TOKEN, **headers}
    message = _LibraryMessage("GET", "https://h/x?a=1&b=2", sent)
    HTTPMessageSigner(
        signature_algorithm=LIBRARY_ALGORITHMS[key.algorithm],
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key.key_id: key.private_key}),
    ).sign(
        message,
        key_id=key.key_id,
        created=datetime.fromtimestamp(NOW, UTC),
        covered_component_ids=components,
    )
    received = {name.lower(): value for name, value in message.headers.items()}
    return SignedRequest("GET", "h", "/x", "a=1&b=2", received, None)


@pytest.mark.parametrize(
    "extra",
    [
        ["@target-uri"],
        ["@request-target"],
        ["@scheme"],
        ['"@query-param";name="a"'],
        ['"priority";key="u"'],
        ['"priority";sf'],
    ],
    ids=lambda extra: extra[0],
)
def test_components_outside_the_direct_set_still_verify_through_the_library(
    extra: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = KEYS["ed25519"]
    required = ["@method", "@authority", "@path", "@query", "authorization"]
    request = _library_signed(key, required + extra, priority="u=1,  i")
    calls: list[str] = []
    library = signature_base_module.check_with_library

    def counted(*args: Any) -> None:
        calls.append("library")
        library(*args)

    monkeypatch.setattr(signature_base_module, "check_with_library", counted)

    ours(request, key, "https")
    assert calls == ["library"]


def test_the_sdk_request_never_reaches_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("the library was asked")

    monkeypatch.setattr(signature_base_module, "check_with_library", refuse)
    for key in KEYS.values():
        body = b'{"a":1}'
        sent = {"authorization": TOKEN, "idempotency-key": "k-1"}
        added = sign_headers(
            key,
            method="POST",
            authority="api.example.com:8443",
            path="/v1/customers",
            query="x=1",
            headers=sent,
            body=body,
            now=NOW,
        )
        headers = sent | {k.lower(): v for k, v in added.items()}
        ours(
            SignedRequest("POST", "api.example.com:8443", "/v1/customers", "x=1", headers, body),
            key,
            "https",
        )


@pytest.mark.parametrize(
    ("components", "message"),
    [
        (["@method", "@method"], "appeared multiple times"),
        (["Authorization"], 'Component ID "Authorization" is not all lowercase'),
        (["x-absent"], 'Covered header field "x-absent" not found in the message'),
        (["@status"], 'Unexpected "@status"'),
        (["@nonsense"], "Unknown covered derived component name @nonsense"),
    ],
)
def test_what_the_library_refuses_is_refused_in_its_words(
    components: list[str], message: str
) -> None:
    key = KEYS["ed25519"]
    required = ['"@method"', '"@authority"', '"@path"', '"@query"', '"authorization"']
    inner = " ".join(required + [f'"{c}"' for c in components])
    request = _library_signed(key, ["@method", "@authority", "@path", "@query", "authorization"])
    headers = dict(request.headers)
    headers["signature-input"] = f'pyhms=({inner});created={NOW};keyid="{key.key_id}";alg="ed25519"'
    tampered = _replace(request, headers=headers)

    with pytest.raises(SignatureRejected) as caught:
        ours(tampered, key, "https")

    assert caught.value.reason == SIGNATURE_MALFORMED
    assert message in caught.value.message


@pytest.mark.parametrize(
    "value",
    ["a\tb", "caf\u00e9", "a\r\n b", "a\x01b"],
    ids=["inner-tab", "non-ascii", "folded", "control"],
)
def test_field_values_the_direct_base_will_not_judge_are_judged_by_the_library(
    value: str,
) -> None:
    key = KEYS["ed25519"]
    covered = ["@method", "@authority", "@path", "@query", "authorization", "x-odd"]
    try:
        request = _library_signed(key, covered, **{"x-odd": value})
    except HTTPMessageSignaturesException:  # it will not even sign that: sign, then swap
        signed = _library_signed(key, covered, **{"x-odd": "plain"})
        request = _replace(signed, headers=dict(signed.headers) | {"x-odd": value})
    parsed = parse_signature_fields(
        request.headers["signature-input"], request.headers["signature"]
    )

    assert signature_base(request, parsed, _public(key), "https") is None
    try:
        library_verify(request, key, "https")
    except HTTPMessageSignaturesException:
        with pytest.raises(SignatureRejected):
            ours(request, key, "https")
    else:
        ours(request, key, "https")


# --- the plain structured-field parser agrees with http_sf --------------------------------------

sf_keys = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,8}", fullmatch=True)
sf_strings = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
sf_integers = st.integers(min_value=-999_999_999_999_999, max_value=999_999_999_999_999)


def _sf(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@settings(max_examples=300, deadline=None)
@given(
    label=sf_keys,
    names=st.lists(sf_strings, max_size=6),
    params=st.lists(st.tuples(sf_keys, st.one_of(sf_strings, sf_integers)), max_size=6),
)
def test_the_plain_parser_reads_canonical_signature_input_exactly_as_http_sf(
    label: str, names: list[str], params: list[tuple[str, str | int]]
) -> None:
    text = (
        f"{label}=("
        + " ".join(_sf(n) for n in names)
        + ")"
        + "".join(f";{k}={v}" if isinstance(v, int) else f";{k}={_sf(v)}" for k, v in params)
    )

    plain = _plain_inner_list(text)

    assert plain is not None
    assert plain == http_sf.parse(text.encode(), tltype="dictionary")
    # And the @signature-params line is http_sf's serialization of what was parsed.
    member = plain[label]
    assert isinstance(member, tuple)
    parsed_names, parsed_params = member
    components = tuple((name, False) for name, _ in parsed_names)
    rebuilt = ParsedSignature(label, components, parsed_params, "k", 0, None, None, None, b"")
    assert signature_params(rebuilt) == http_sf.ser(plain).removeprefix(f"{label}=")


@settings(max_examples=500, deadline=None)
@given(text=st.text(st.sampled_from('sig1=()"\\ ;:,ab*-.0129?=:+/AZ\t'), max_size=40))
def test_the_plain_parsers_accept_nothing_http_sf_would_read_differently(text: str) -> None:
    for plain in (_plain_inner_list, _plain_byte_sequence):
        result = plain(text)
        if result is not None:
            assert result == http_sf.parse(text.encode(), tltype="dictionary")


@settings(max_examples=200, deadline=None)
@given(label=sf_keys, data=st.binary(max_size=80))
def test_the_plain_parser_reads_a_byte_sequence_exactly_as_http_sf(label: str, data: bytes) -> None:
    text = f"{label}=:{base64.b64encode(data).decode()}:"

    assert _plain_byte_sequence(text) == http_sf.parse(text.encode(), tltype="dictionary")
    assert _plain_byte_sequence(text) == {label: (data, {})}


def test_a_content_digest_is_read_plainly_only_when_it_has_one_member() -> None:
    digest = base64.b64encode(hashlib.sha256(b"x").digest()).decode()

    assert _plain_byte_sequence(f"sha-256=:{digest}:") is not None
    assert _plain_byte_sequence(f"sha-256=:{digest}:, md5=:AAAA:") is None
