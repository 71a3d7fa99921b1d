"""Request signatures through the real Envoy (SPEC section 3): every way a request can fail
verification answers 401 naming the check and writes nothing; signing keys register,
rotate and delete; secrets rotate; a client cannot forge what the gateway forwards."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from client.idempotency import MODIFYING_HTTP_METHODS, new_key
from client.signing import (
    ED25519,
    PrivateSigningKey,
    authority_of,
    generate_key,
    new_nonce,
    public_key_b64,
    sign_headers,
)
from tests.e2e.conftest import Stack, error_reason
from tests.helpers.rest import RestPartner
from tests.helpers.signatures import FULL_COVERAGE, content_digest, hand_sign
from tests.helpers.wallets import caip10, new_wallet


@dataclass(frozen=True)
class Wire:
    """A request exactly as it goes out: method, raw path and query, headers, body bytes."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def send(self, http: httpx.Client) -> httpx.Response:
        target = self.path + (f"?{self.query}" if self.query else "")
        return http.request(self.method, target, headers=self.headers, content=self.body)

    def without(self, *names: str) -> Wire:
        drop = {name.lower() for name in names}
        kept = {k: v for k, v in self.headers.items() if k.lower() not in drop}
        return replace(self, headers=kept)

    def with_headers(self, **headers: str) -> Wire:
        """Set (replace) headers; underscores in the names stand for dashes."""
        named = {name.replace("_", "-"): value for name, value in headers.items()}
        return replace(self, headers={**self.without(*named).headers, **named})


def unsigned(
    partner: RestPartner, method: str, path: str, *, query: str = "", body: Any = None
) -> Wire:
    """What the SDK would send before signing: token, Idempotency-Key, JSON body."""
    headers = {"Authorization": f"Bearer {partner.token}"}
    if method.upper() in MODIFYING_HTTP_METHODS:
        headers["Idempotency-Key"] = new_key()
    raw = None
    if body is not None:
        raw = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return Wire(method.upper(), path, query, headers, raw)


def signed(
    partner: RestPartner, wire: Wire, *, key: PrivateSigningKey | None = None, **options: Any
) -> Wire:
    """`wire` plus Content-Digest, Signature-Input and Signature by the partner SDK."""
    added = sign_headers(
        key or partner.key,
        method=wire.method,
        authority=authority_of(partner.http.base_url),
        path=wire.path,
        query=wire.query,
        headers=wire.headers,
        body=wire.body,
        **options,
    )
    return replace(wire, headers={**wire.headers, **added})


def hand_signed(
    partner: RestPartner,
    wire: Wire,
    *,
    components: tuple[str, ...],
    der: bool = False,
    **params: str | int,
) -> Wire:
    """`wire` signed outside the SDK over exactly `components` with exactly `params`."""
    headers = dict(wire.headers)
    if wire.body:
        headers["Content-Digest"] = content_digest(wire.body)
    added = hand_sign(
        partner.key,
        method=wire.method,
        authority=authority_of(partner.http.base_url),
        path=wire.path,
        query=wire.query,
        headers=headers,
        components=components,
        params={"created": int(time.time()), "keyid": partner.key.key_id, **params},
        der=der,
    )
    return replace(wire, headers={**headers, **added})


def customer_body() -> dict[str, str]:
    return {"chainId": caip10(new_wallet()), "externalId": uuid.uuid4().hex}


def create_attempt(partner: RestPartner) -> Wire:
    return unsigned(partner, "POST", "/customers", body=customer_body())


def customers_of(partner: RestPartner) -> list[dict[str, Any]]:
    listed = partner.call("GET", "/customers")
    assert listed.status_code == 200, listed.text
    return list(listed.json()["customers"])


def assert_rejected(answer: httpx.Response, reason: str, says: str) -> None:
    assert answer.status_code == 401, answer.text
    assert error_reason(answer) == reason, answer.text
    assert says in answer.json()["message"], answer.text


# --- every failed check on POST /customers: 401, its reason, and no customer ---------------

Build = Callable[[RestPartner], Wire]
# What a create must cover: FULL_COVERAGE plus its body digest and its Idempotency-Key.
CREATE_COVERAGE = (*FULL_COVERAGE, "content-digest", "idempotency-key")


@dataclass(frozen=True)
class Rejection:
    name: str
    build: Build
    reason: str
    says: str  # a fragment of the message naming the failed check


def _tampered_body(p: RestPartner) -> Wire:
    attempt = signed(p, create_attempt(p))
    return replace(attempt, body=json.dumps(customer_body()).encode())


def _tampered_body_and_digest(p: RestPartner) -> Wire:
    other = json.dumps(customer_body()).encode()
    attempt = signed(p, create_attempt(p))
    return replace(attempt.with_headers(content_digest=content_digest(other)), body=other)


def _two_labels(p: RestPartner) -> Wire:
    attempt = signed(p, create_attempt(p))
    value = attempt.headers["Signature-Input"]
    signature = attempt.headers["Signature"]
    return attempt.with_headers(
        signature_input=f"{value}, {value.replace('sig1=', 'sig2=', 1)}",
        signature=f"{signature}, {signature.replace('sig1=', 'sig2=', 1)}",
    )


REJECTIONS = [
    Rejection(
        "missing Signature",
        lambda p: signed(p, create_attempt(p)).without("Signature"),
        "SIGNATURE_MISSING",
        "missing Signature header",
    ),
    Rejection(
        "missing Signature-Input",
        lambda p: signed(p, create_attempt(p)).without("Signature-Input"),
        "SIGNATURE_MISSING",
        "missing Signature-Input header",
    ),
    Rejection(
        "missing both signature headers",
        lambda p: create_attempt(p),
        "SIGNATURE_MISSING",
        "missing Signature and Signature-Input headers",
    ),
    Rejection(
        "missing Content-Digest on a body",
        lambda p: signed(p, create_attempt(p)).without("Content-Digest"),
        "DIGEST_MISSING",
        "no Content-Digest",
    ),
    Rejection(
        "body changed after signing",
        _tampered_body,
        "DIGEST_MISMATCH",
        "Content-Digest sha-256 does not match the request body",
    ),
    Rejection(
        "body and digest changed after signing",
        _tampered_body_and_digest,
        "SIGNATURE_INVALID",
        "Signature does not verify",
    ),
    Rejection(
        "unsupported digest algorithm",
        lambda p: signed(p, create_attempt(p)).with_headers(content_digest="md5=:AAAA:"),
        "DIGEST_UNSUPPORTED",
        "no supported algorithm",
    ),
    Rejection(
        "Idempotency-Key changed after signing",
        lambda p: signed(p, create_attempt(p)).with_headers(idempotency_key=new_key()),
        "SIGNATURE_INVALID",
        "Signature does not verify",
    ),
    Rejection(
        "key never registered",
        lambda p: signed(p, create_attempt(p), key=generate_key()),
        "UNKNOWN_KEY",
        "is not a live signing key of this partner",
    ),
    Rejection(
        "created more than 5 minutes ago",
        lambda p: signed(p, create_attempt(p), now=int(time.time()) - 301),
        "SIGNATURE_EXPIRED",
        "'created' is",
    ),
    Rejection(
        "created more than 1 minute ahead",
        lambda p: signed(p, create_attempt(p), now=int(time.time()) + 120),
        "SIGNATURE_NOT_YET_VALID",
        "in the future",
    ),
    Rejection(
        "expires in the past",
        lambda p: signed(p, create_attempt(p), now=int(time.time()) - 60, expires_in=30),
        "SIGNATURE_EXPIRED",
        "'expires' passed",
    ),
    Rejection(
        "alg of another key type",
        lambda p: hand_signed(p, create_attempt(p), components=CREATE_COVERAGE, alg=ED25519),
        "ALGORITHM_MISMATCH",
        "alg 'ed25519' does not match",
    ),
    Rejection(
        "alg the service does not support",
        lambda p: hand_signed(
            p, create_attempt(p), components=CREATE_COVERAGE, alg="rsa-pss-sha512"
        ),
        "ALGORITHM_MISMATCH",
        "alg 'rsa-pss-sha512' does not match",
    ),
    Rejection(
        "unknown signature parameter",
        lambda p: hand_signed(p, create_attempt(p), components=CREATE_COVERAGE, foo="x"),
        "SIGNATURE_MALFORMED",
        "Unsupported signature parameter 'foo'",
    ),
    Rejection(
        "ECDSA signature in DER instead of r||s",
        lambda p: hand_signed(p, create_attempt(p), components=CREATE_COVERAGE, der=True),
        "SIGNATURE_MALFORMED",
        "r||s",
    ),
    Rejection(
        "Signature-Input that is not a structured dictionary",
        lambda p: signed(p, create_attempt(p)).with_headers(signature_input="sig1=(((@method"),
        "SIGNATURE_MALFORMED",
        "Signature-Input header is not a valid structured dictionary",
    ),
    Rejection(
        "Signature that is not a byte sequence",
        lambda p: signed(p, create_attempt(p)).with_headers(signature="sig1=not-base64"),
        "SIGNATURE_MALFORMED",
        "is not a byte sequence",
    ),
    Rejection(
        "two signature labels",
        _two_labels,
        "SIGNATURE_MALFORMED",
        "Exactly one signature is accepted",
    ),
    Rejection(
        "signature without keyid",
        lambda p: signed(p, create_attempt(p)).with_headers(
            signature_input=f'sig1=("@method");created={int(time.time())}'
        ),
        "SIGNATURE_MALFORMED",
        "'keyid' is required",
    ),
    Rejection(
        "authorization not covered",
        lambda p: hand_signed(
            p,
            create_attempt(p),
            components=("@method", "@authority", "@path", "content-digest", "idempotency-key"),
        ),
        "SIGNATURE_COMPONENTS_MISSING",
        "'authorization'",
    ),
    Rejection(
        "content-digest not covered",
        lambda p: hand_signed(p, create_attempt(p), components=(*FULL_COVERAGE, "idempotency-key")),
        "SIGNATURE_COMPONENTS_MISSING",
        "'content-digest'",
    ),
    Rejection(
        "idempotency-key not covered",
        lambda p: hand_signed(p, create_attempt(p), components=(*FULL_COVERAGE, "content-digest")),
        "SIGNATURE_COMPONENTS_MISSING",
        "'idempotency-key'",
    ),
    Rejection(
        "no bearer token",
        lambda p: signed(p, create_attempt(p).without("Authorization")),
        "UNAUTHENTICATED",
        "Authorization",
    ),
]


@pytest.mark.parametrize("case", REJECTIONS, ids=[case.name for case in REJECTIONS])
def test_a_create_failing_a_signature_check_answers_401_naming_it_and_creates_nothing(
    partner: RestPartner, case: Rejection
) -> None:
    answer = case.build(partner).send(partner.http)
    assert_rejected(answer, case.reason, case.says)
    assert customers_of(partner) == []


def test_a_create_signed_with_another_partners_key_answers_401_and_creates_nothing(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    answer = signed(partner, create_attempt(partner), key=other_partner.key).send(partner.http)
    assert_rejected(answer, "UNKNOWN_KEY", "is not a live signing key of this partner")
    assert customers_of(partner) == customers_of(other_partner) == []


def test_a_hand_built_rfc_9421_signature_is_accepted(partner: RestPartner) -> None:
    """The reference for the cases above: the same construction, complete, verifies."""
    attempt = hand_signed(
        partner,
        create_attempt(partner),
        components=CREATE_COVERAGE,
        alg="ecdsa-p384-sha384",
        nonce=new_nonce(),
    )
    assert attempt.send(partner.http).status_code == 201
    assert len(customers_of(partner)) == 1


def test_a_path_changed_after_signing_answers_401_and_changes_neither_customer(
    partner: RestPartner,
) -> None:
    first, second = partner.active_customer(), partner.active_customer()
    attempt = signed(partner, unsigned(partner, "PATCH", f"/customers/{first['id']}/deactivate"))
    answer = replace(attempt, path=f"/customers/{second['id']}/deactivate").send(partner.http)
    assert_rejected(answer, "SIGNATURE_INVALID", "Signature does not verify")
    for customer in (first, second):
        assert partner.call("GET", f"/customers/{customer['id']}").json()["status"] == "active"
    assert attempt.send(partner.http).status_code == 200  # as signed, it was acceptable


def test_the_signed_path_is_the_one_sent_with_its_version_prefix(partner: RestPartner) -> None:
    """The verifier runs before the gateway strips `/v1`: it sees the path as sent."""
    versioned = signed(partner, unsigned(partner, "GET", "/v1/customers"))
    assert versioned.send(partner.http).status_code == 200
    unversioned = signed(partner, unsigned(partner, "GET", "/customers"))
    answer = replace(unversioned, path="/v1/customers").send(partner.http)
    assert_rejected(answer, "SIGNATURE_INVALID", "Signature does not verify")


def test_a_query_changed_after_signing_answers_401(partner: RestPartner) -> None:
    attempt = signed(partner, unsigned(partner, "GET", "/customers", query="pageSize=1"))
    answer = replace(attempt, query="pageSize=2").send(partner.http)
    assert_rejected(answer, "SIGNATURE_INVALID", "Signature does not verify")
    assert attempt.send(partner.http).status_code == 200


def test_a_query_added_to_a_request_signed_without_one_answers_401(
    partner: RestPartner,
) -> None:
    attempt = signed(partner, unsigned(partner, "GET", "/customers"))
    answer = replace(attempt, query="pageSize=2").send(partner.http)
    assert_rejected(answer, "SIGNATURE_COMPONENTS_MISSING", "'@query'")


def test_a_replayed_request_with_a_nonce_answers_401_and_runs_once(partner: RestPartner) -> None:
    attempt = signed(partner, create_attempt(partner), nonce=new_nonce())
    assert attempt.send(partner.http).status_code == 201
    assert_rejected(attempt.send(partner.http), "NONCE_REPLAYED", "nonce was already used")
    assert len(customers_of(partner)) == 1
    read = signed(partner, unsigned(partner, "GET", "/customers"), nonce=new_nonce())
    assert read.send(partner.http).status_code == 200
    assert_rejected(read.send(partner.http), "NONCE_REPLAYED", "nonce was already used")


# --- keys -----------------------------------------------------------------------------------


def keys_of(partner: RestPartner, key: PrivateSigningKey | None = None) -> dict[str, str]:
    listed = partner.call("GET", "/auth/signing", key=key)
    assert listed.status_code == 200, listed.text
    return {item["keyId"]: item["algorithm"] for item in listed.json()["keys"]}


def register(partner: RestPartner, new: PrivateSigningKey, **options: Any) -> httpx.Response:
    return partner.call("PUT", "/auth/signing", json={"publicKey": public_key_b64(new)}, **options)


def test_an_ed25519_partner_works_end_to_end(stack: Stack, http: httpx.Client) -> None:
    partner = RestPartner(http, stack.new_partner(), algorithm=ED25519)
    customer_id = partner.active_customer()["id"]  # create, challenge sign, simulator, get
    assert [c["id"] for c in customers_of(partner)] == [customer_id]
    deactivated = partner.call("PATCH", f"/customers/{customer_id}/deactivate")
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["status"] == "inactive"
    assert keys_of(partner) == {partner.key.key_id: ED25519}


def test_keys_rotate_with_two_live_at_once_and_a_deleted_key_stops_working(
    partner: RestPartner,
) -> None:
    old, new = partner.key, generate_key(ED25519)
    added = register(partner, new)
    assert added.status_code == 201, added.text
    assert added.json()["keyId"] == new.key_id
    assert keys_of(partner) == {old.key_id: "ecdsa-p384-sha384", new.key_id: ED25519}
    for key in (old, new):
        assert partner.call("GET", "/customers", key=key).status_code == 200

    third = register(partner, generate_key(), key=new)
    assert third.status_code == 409, third.text
    assert error_reason(third) == "SIGNING_KEY_LIMIT_REACHED"

    deleted = partner.call("DELETE", f"/auth/signing/{old.key_id}", key=new)
    assert deleted.status_code == 204, deleted.text
    assert_rejected(partner.call("GET", "/customers", key=old), "UNKNOWN_KEY", old.key_id)
    assert keys_of(partner, key=new) == {new.key_id: ED25519}
    assert partner.call("POST", "/customers", json=customer_body(), key=new).status_code == 201
    assert register(partner, generate_key(), key=new).status_code == 201  # room again


def test_deleting_an_unknown_key_answers_404(partner: RestPartner) -> None:
    answer = partner.call("DELETE", f"/auth/signing/{generate_key().key_id}")
    assert answer.status_code == 404, answer.text
    assert error_reason(answer) == "SIGNING_KEY_NOT_FOUND"


def test_registering_a_live_key_again_answers_200_with_the_same_key_id(
    partner: RestPartner,
) -> None:
    again = register(partner, partner.key)
    assert again.status_code == 200, again.text
    assert again.json()["keyId"] == partner.key.key_id
    assert list(keys_of(partner)) == [partner.key.key_id]


def test_a_second_key_registered_without_a_signature_answers_401_and_is_not_added(
    partner: RestPartner,
) -> None:
    answer = register(partner, generate_key(), signed=False)
    assert_rejected(answer, "SIGNATURE_MISSING", "Request is not signed")
    assert list(keys_of(partner)) == [partner.key.key_id]


def test_after_the_last_key_is_deleted_the_next_key_needs_only_the_token(
    partner: RestPartner,
) -> None:
    """docs/DECISIONS.md, first-key rule: no live key means the next one is a first key."""
    deleted = partner.call("DELETE", f"/auth/signing/{partner.key.key_id}")
    assert deleted.status_code == 204, deleted.text
    assert_rejected(partner.call("GET", "/customers"), "UNKNOWN_KEY", partner.key.key_id)
    replacement = generate_key()
    assert register(partner, replacement, signed=False).status_code == 201
    assert partner.call("GET", "/customers", key=replacement).status_code == 200


def _pem_b64(public_key: Any) -> str:
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(pem).decode("ascii")


BAD_KEYS = {
    "not base64": "not base64 at all!",
    "base64 of text": base64.b64encode(b"hello").decode(),
    "P-256": _pem_b64(ec.generate_private_key(ec.SECP256R1()).public_key()),
    "RSA": _pem_b64(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()),
    "private key PEM": base64.b64encode(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    ).decode(),
}


@pytest.mark.parametrize("public_key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_a_public_key_that_is_not_a_p384_or_ed25519_spki_answers_400(
    partner: RestPartner, public_key: str
) -> None:
    answer = partner.call("PUT", "/auth/signing", json={"publicKey": public_key})
    assert answer.status_code == 400, answer.text
    assert error_reason(answer) == "INVALID_SIGNING_KEY"
    assert list(keys_of(partner)) == [partner.key.key_id]


# --- tokens and secrets ---------------------------------------------------------------------


def test_token_requests_need_no_signature(partner: RestPartner) -> None:
    answer = partner.http.post(
        "/auth/token",
        json={
            "apiKey": partner.credentials.api_key,
            "apiSecret": partner.credentials.api_secret,
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["tokenType"] == "Bearer"
    assert isinstance(answer.json()["expiresAt"], int)


def test_rotating_the_secret_kills_old_tokens_and_the_old_secret(partner: RestPartner) -> None:
    old_secret = partner.credentials.api_secret
    rotated = partner.call("PUT", "/auth/credentials", json={})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["apiKey"] == partner.credentials.api_key
    new_secret = rotated.json()["apiSecret"]
    assert new_secret and new_secret != old_secret

    assert_rejected(partner.call("GET", "/customers"), "UNAUTHENTICATED", "revoked")
    api_key = partner.credentials.api_key
    with_old = partner.http.post("/auth/token", json={"apiKey": api_key, "apiSecret": old_secret})
    assert with_old.status_code == 401, with_old.text
    with_new = partner.http.post("/auth/token", json={"apiKey": api_key, "apiSecret": new_secret})
    assert with_new.status_code == 200, with_new.text
    partner.token = with_new.json()["token"]
    assert partner.call("GET", "/customers").status_code == 200  # the signing key survives


# --- what the gateway forwards about a request cannot be supplied by a client ---------------


def forged_forwarding(target: str, body: bytes) -> dict[str, str]:
    """Headers claiming the gateway saw another request (gateway/request.lua's names)."""
    return {
        "x-gateway-method": "DELETE",
        "x-gateway-authority": "evil.example",
        "x-gateway-target": target,
        "x-gateway-body": base64.b64encode(body).decode(),
    }


def test_client_sent_gateway_headers_are_replaced_by_the_gateways_own(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    """A signed GET /customers with forged forwarding headers is verified (and answered) as
    the GET /customers it is: the client's x-gateway-* never reach the server."""
    created = other_partner.create_customer()
    assert created.status_code == 201
    forged = forged_forwarding(f"/customers/{created.json()['id']}", b"{}")
    answer = partner.call("GET", "/customers", headers=forged)
    assert answer.status_code == 200, answer.text
    assert answer.json()["customers"] == []  # the signer's own list


def test_a_forged_forwarded_body_does_not_excuse_a_tampered_one(partner: RestPartner) -> None:
    """The body is tampered with after signing; a forged x-gateway-body carrying the signed
    bytes would make the digest match, if the gateway let it through."""
    attempt = signed(partner, create_attempt(partner))
    tampered = replace(attempt, body=json.dumps(customer_body()).encode()).with_headers(
        **{
            name.replace("-", "_"): value
            for name, value in forged_forwarding("/customers", attempt.body or b"").items()
        }
    )
    assert_rejected(tampered.send(partner.http), "DIGEST_MISMATCH", "Content-Digest")
    assert customers_of(partner) == []


def test_client_sent_gateway_headers_on_a_public_path_are_dropped(partner: RestPartner) -> None:
    answer = partner.http.post(
        "/auth/token",
        json={
            "apiKey": partner.credentials.api_key,
            "apiSecret": partner.credentials.api_secret,
        },
        headers=forged_forwarding("/auth/signing", b"{}"),
    )
    assert answer.status_code == 200, answer.text
