"""Idempotency-Key over REST through the real Envoy (SPEC section 4)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from client.signing import SigningAuth
from tests.e2e.conftest import Stack, error_reason
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet


def _create_body() -> dict[str, str]:
    return {"chainId": caip10(new_wallet()), "externalId": uuid.uuid4().hex}


def _count(partner: RestPartner) -> int:
    return len(partner.call("GET", "/customers").json()["customers"])


def test_same_key_and_request_replays_the_stored_answer_exactly(partner: RestPartner) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = _create_body()
    first = partner.call("POST", "/customers", json=body, headers=key)
    again = partner.call("POST", "/customers", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _count(partner) == 1


def test_a_stored_error_is_replayed_too(partner: RestPartner) -> None:
    body = _create_body()
    assert partner.call("POST", "/customers", json=body).status_code == 201
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = partner.call("POST", "/customers", json=body, headers=key)
    again = partner.call("POST", "/customers", json=body, headers=key)
    assert first.status_code == again.status_code == 409
    assert again.content == first.content


def test_empty_answers_replay_with_their_status(partner: RestPartner) -> None:
    customer = partner.create_customer().json()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    path = f"/simulator/customers/{customer['id']}/verify"
    for _ in range(2):
        answer = partner.call("PATCH", path, headers=key)
        assert answer.status_code == 202 and answer.content == b""


def test_same_key_with_another_request_answers_422_and_writes_nothing(
    partner: RestPartner,
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert partner.call("POST", "/customers", json=_create_body(), headers=key).status_code == 201
    reused = partner.call("POST", "/customers", json=_create_body(), headers=key)
    assert reused.status_code == 422
    assert error_reason(reused) == "IDEMPOTENCY_KEY_REUSED"
    customer = partner.call("GET", "/customers").json()["customers"][0]
    elsewhere = partner.call("PATCH", f"/customers/{customer['id']}/deactivate", headers=key)
    assert elsewhere.status_code == 422
    assert _count(partner) == 1


def test_missing_or_malformed_key_answers_400_and_writes_nothing(partner: RestPartner) -> None:
    missing = partner.call("POST", "/customers", json=_create_body(), idempotent=False)
    assert missing.status_code == 400
    assert error_reason(missing) == "IDEMPOTENCY_KEY_MISSING"
    for bad in ["", "not-a-uuid", "1234"]:
        answer = partner.call(
            "POST", "/customers", json=_create_body(), headers={"Idempotency-Key": bad}
        )
        assert answer.status_code == 400, bad
        assert error_reason(answer) in {"IDEMPOTENCY_KEY_INVALID", "IDEMPOTENCY_KEY_MISSING"}
    assert _count(partner) == 0


def test_keys_are_scoped_to_the_partner(partner: RestPartner, other_partner: RestPartner) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = _create_body()
    mine = partner.call("POST", "/customers", json=body, headers=key)
    theirs = other_partner.call("POST", "/customers", json=body, headers=key)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


def fire_concurrently(stack: Stack, partner: RestPartner, count: int) -> list[httpx.Response]:
    """`count` identical creates at once, each on its own connection."""
    key, body = str(uuid.uuid4()), _create_body()
    headers = {"Authorization": f"Bearer {partner.token}", "Idempotency-Key": key}

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            return client.post(
                "/customers", json=body, headers=headers, auth=SigningAuth(partner.key)
            )

    with ThreadPoolExecutor(max_workers=count) as pool:
        answers = list(pool.map(send, range(count)))
    created = [a for a in answers if a.status_code == 201]
    waiting = [a for a in answers if a.status_code == 409]
    assert len(created) + len(waiting) == count, {a.status_code for a in answers}
    assert {error_reason(a) for a in waiting} <= {"IDEMPOTENCY_KEY_IN_FLIGHT"}, [
        a.text for a in waiting
    ]
    assert len({a.content for a in created}) == 1
    # A client that was told "in flight" retries and gets the stored 201.
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        retry = client.post("/customers", json=body, headers=headers, auth=SigningAuth(partner.key))
    assert retry.status_code == 201
    assert retry.content == (created[0].content if created else retry.content)
    return answers


def test_fifty_identical_creates_at_once_make_exactly_one_customer(
    stack: Stack, partner: RestPartner
) -> None:
    fire_concurrently(stack, partner, 50)
    assert _count(partner) == 1
