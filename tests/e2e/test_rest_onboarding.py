"""Onboarding through the real Envoy: the sandbox KYC partner's portal and its signed
callbacks, and every rule of the ownership challenge."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from server.config import DEVELOPMENT_KYC_WEBHOOK_SECRET
from tests.e2e.conftest import error_reason
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet, sign_challenge

SOLANA = "solana:4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZ:7S3P4HxJpyyigGzodYwHtCxZyUQe9JiBMHyRWXFJ7ZRb"


def create(partner: RestPartner, wallet: LocalAccount) -> dict[str, Any]:
    answer = partner.call(
        "POST", "/customers", json={"chainId": caip10(wallet), "externalId": uuid.uuid4().hex}
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def sign(
    partner: RestPartner,
    customer: dict[str, Any],
    wallet: LocalAccount,
    challenge: str | None = None,
    signer: str | None = None,
) -> httpx.Response:
    text = challenge or customer["challenge"]
    return partner.call(
        "POST",
        f"/customers/{customer['id']}/challenge/sign",
        json={
            "signature": sign_challenge(wallet, text),
            "signer": signer or customer["chainId"],
            "challenge": text,
        },
    )


def status_of(partner: RestPartner, customer: dict[str, Any]) -> str:
    return str(partner.call("GET", f"/customers/{customer['id']}").json()["status"])


def current_challenge(partner: RestPartner, customer: dict[str, Any]) -> str:
    answer = partner.call("GET", f"/customers/{customer['id']}/challenge")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["challenge"])


def session_of(customer: dict[str, Any]) -> str:
    return str(customer["verificationUrl"]).rsplit("/", 1)[1]


def decide(http: httpx.Client, customer: dict[str, Any], decision: str) -> httpx.Response:
    """What the portal page's button does: a form post to `<session>/decision`."""
    return http.post(f"{customer['verificationUrl']}/decision", data={"decision": decision})


def callback(
    http: httpx.Client,
    session_id: str,
    verdict: str,
    *,
    secret: str = DEVELOPMENT_KYC_WEBHOOK_SECRET,
    timestamp: int | None = None,
    event_id: str = "evt_test",
    signed_body: bytes | None = None,
) -> httpx.Response:
    """A KYC partner callback, signed by the documented scheme (computed here, not with
    the server's own helper, so the test pins the scheme)."""
    t = int(time.time()) if timestamp is None else timestamp
    body = json.dumps(
        {"sessionId": session_id, "verdict": verdict, "eventId": event_id, "timestamp": t}
    ).encode()
    mac = hmac.new(secret.encode(), f"{t}.".encode() + (signed_body or body), hashlib.sha256)
    return http.post(
        "/kyc/callbacks",
        content=body,
        headers={
            "content-type": "application/json",
            "X-Kyc-Signature": f"t={t},v1={mac.hexdigest()}",
        },
    )


# -- the sandbox KYC portal --------------------------------------------------------------


def test_verification_url_is_an_html_portal_page_served_through_the_gateway(
    http: httpx.Client, stack: Any, partner: RestPartner
) -> None:
    customer = create(partner, new_wallet())
    url = customer["verificationUrl"]
    assert url.startswith(f"{stack.base_url}/kyc/")
    page = http.get(url)  # no bearer token: the session id is the capability
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert session_of(customer) in page.text
    assert 'value="approve"' in page.text and 'value="reject"' in page.text
    assert customer["externalId"] not in page.text
    assert http.get(f"/v1/kyc/{session_of(customer)}").status_code == 200


def test_portal_approval_before_signing_activates_the_customer_once_signed(
    http: httpx.Client, partner: RestPartner
) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    answer = decide(http, customer, "approve")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "approved" in answer.text
    assert status_of(partner, customer) == "initiating"  # kept until `verifying`
    assert sign(partner, customer, wallet).status_code == 204
    assert status_of(partner, customer) == "active"


def test_portal_approval_in_verifying_activates_at_once(
    http: httpx.Client, partner: RestPartner
) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    assert sign(partner, customer, wallet).status_code == 204
    assert status_of(partner, customer) == "verifying"
    assert decide(http, customer, "approve").status_code == 200
    assert status_of(partner, customer) == "active"


def test_portal_rejection_makes_the_customer_rejected_for_good(
    http: httpx.Client, partner: RestPartner
) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    assert sign(partner, customer, wallet).status_code == 204
    rejected = decide(http, customer, "reject")
    assert rejected.status_code == 200 and "rejected" in rejected.text
    assert status_of(partner, customer) == "rejected"
    activate = partner.call("PATCH", f"/customers/{customer['id']}/activate")
    assert activate.status_code == 409
    assert "rejected" in activate.json()["message"]
    assert error_reason(activate) == "INVALID_STATE_TRANSITION"
    # A change of mind at the partner arrives too late: acknowledged, nothing changes.
    assert decide(http, customer, "approve").status_code == 200
    assert status_of(partner, customer) == "rejected"


def test_portal_refuses_unknown_sessions_and_unknown_decisions(
    http: httpx.Client, partner: RestPartner
) -> None:
    for answer in [
        http.get("/kyc/no-such-session"),
        decide(http, {"verificationUrl": "/kyc/x"}, "approve"),
    ]:
        assert answer.status_code == 404, answer.text
        assert error_reason(answer) == "KYC_SESSION_NOT_FOUND"
    customer = create(partner, new_wallet())
    for form in [{"decision": "maybe"}, {}, {"decision": ["approve", "reject"]}]:
        answer = http.post(f"{customer['verificationUrl']}/decision", data=form)
        assert answer.status_code == 400, (form, answer.text)
        assert error_reason(answer) == "INVALID_FIELD"
    assert status_of(partner, customer) == "initiating"


# -- KYC partner callbacks ------------------------------------------------------------------


def test_duplicate_callbacks_are_acknowledged_and_harmless(
    http: httpx.Client, partner: RestPartner
) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    session = session_of(customer)
    for _ in range(2):
        answer = callback(http, session, "approved", event_id="evt_dup")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {}
    assert status_of(partner, customer) == "initiating"
    assert sign(partner, customer, wallet).status_code == 204
    assert status_of(partner, customer) == "active"
    # Late resends of either verdict for a customer whose KYC is decided change nothing.
    for verdict in ["approved", "rejected"]:
        assert callback(http, session, verdict).status_code == 200
    assert status_of(partner, customer) == "active"


def test_forged_callbacks_answer_401_and_change_nothing(
    http: httpx.Client, partner: RestPartner
) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    session = session_of(customer)
    other_body = json.dumps({"sessionId": session, "verdict": "rejected"}).encode()
    forged = [
        callback(http, session, "approved", secret="not-the-partner-secret"),
        callback(http, session, "approved", signed_body=other_body),  # tampered body
        callback(http, session, "approved", timestamp=int(time.time()) - 3600),  # replayed
        http.post("/kyc/callbacks", json={"sessionId": session, "verdict": "approved"}),
        http.post(
            "/kyc/callbacks",
            json={"sessionId": session, "verdict": "approved", "eventId": "e"},
            headers={"X-Kyc-Signature": "v1=deadbeef"},
        ),
    ]
    for answer in forged:
        assert answer.status_code == 401, answer.text
        assert error_reason(answer) == "INVALID_CALLBACK_SIGNATURE"
    assert sign(partner, customer, wallet).status_code == 204
    assert status_of(partner, customer) == "verifying"  # no verdict was stored


def test_signed_callbacks_for_unknown_sessions_or_malformed_bodies_are_refused(
    http: httpx.Client, partner: RestPartner
) -> None:
    unknown = callback(http, "no-such-session", "approved")
    assert unknown.status_code == 404
    assert error_reason(unknown) == "KYC_SESSION_NOT_FOUND"
    customer = create(partner, new_wallet())
    bad = callback(http, session_of(customer), "maybe")
    assert bad.status_code == 400
    assert error_reason(bad) == "INVALID_FIELD"
    assert status_of(partner, customer) == "initiating"


# -- the ownership challenge's failure rules -------------------------------------------------


def test_signature_by_another_key_answers_400_and_replaces_the_challenge(
    partner: RestPartner,
) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    answer = sign(partner, customer, new_wallet())
    assert answer.status_code == 400, answer.text
    assert error_reason(answer) == "CHALLENGE_REJECTED"
    fresh = current_challenge(partner, customer)
    assert fresh != customer["challenge"]
    assert status_of(partner, customer) == "initiating"
    assert sign(partner, customer, wallet, challenge=fresh).status_code == 204
    assert status_of(partner, customer) == "verifying"


def test_signer_that_is_not_the_customer_answers_400(partner: RestPartner) -> None:
    wallet, intruder = new_wallet(), new_wallet()
    customer = create(partner, wallet)
    answer = sign(partner, customer, intruder, signer=caip10(intruder))
    assert answer.status_code == 400, answer.text
    assert "signer" in answer.json()["message"]
    assert error_reason(answer) == "CHALLENGE_REJECTED"
    assert status_of(partner, customer) == "initiating"


def test_stale_challenge_text_answers_400(partner: RestPartner) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    assert sign(partner, customer, new_wallet()).status_code == 400  # replaces the challenge
    stale = sign(partner, customer, wallet)  # the right wallet, the old text
    assert stale.status_code == 400, stale.text
    assert "current challenge" in stale.json()["message"]
    assert error_reason(stale) == "CHALLENGE_REJECTED"
    assert status_of(partner, customer) == "initiating"


def test_signing_again_after_success_answers_409_challenge_already_signed(
    partner: RestPartner,
) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    assert sign(partner, customer, wallet).status_code == 204
    again = sign(partner, customer, wallet)
    assert again.status_code == 409, again.text
    assert again.json()["message"] == "Challenge already signed"
    assert error_reason(again) == "CHALLENGE_ALREADY_SIGNED"


def test_bad_base64_answers_400_and_keeps_the_challenge(partner: RestPartner) -> None:
    wallet = new_wallet()
    customer = create(partner, wallet)
    good_signature = sign_challenge(wallet, customer["challenge"])
    for field, body in [
        ("signature", {"signature": "not base64!", "challenge": customer["challenge"]}),
        ("challenge", {"signature": good_signature, "challenge": "%%%"}),
    ]:
        answer = partner.call(
            "POST",
            f"/customers/{customer['id']}/challenge/sign",
            json={"signer": customer["chainId"], **body},
        )
        assert answer.status_code == 400, answer.text
        assert error_reason(answer) == "INVALID_FIELD"
        assert field in answer.json()["message"]
        assert current_challenge(partner, customer) == customer["challenge"]
    assert sign(partner, customer, wallet).status_code == 204


def test_non_eip155_customer_gets_400_unsupported_chain_on_challenge_and_sign(
    partner: RestPartner,
) -> None:
    created = partner.call("POST", "/customers", json={"chainId": SOLANA, "externalId": "sol"})
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["chainId"] == SOLANA and "challenge" not in customer
    answers = [
        partner.call("GET", f"/customers/{customer['id']}/challenge"),
        partner.call(
            "POST",
            f"/customers/{customer['id']}/challenge/sign",
            json={
                "signature": base64.b64encode(b"\x01" * 65).decode(),
                "signer": SOLANA,
                "challenge": base64.b64encode(b"anything").decode(),
            },
        ),
    ]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert error_reason(answer) == "UNSUPPORTED_CHAIN"
        assert "eip155" in answer.json()["message"]
    assert status_of(partner, customer) == "initiating"
