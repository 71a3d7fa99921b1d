"""Every customer REST path of the contract, through the real Envoy, on both databases."""

from __future__ import annotations

import base64
import re
import uuid

import httpx

from tests.e2e.conftest import error_reason
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet, sign_challenge

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def test_token_answers_bearer_with_unix_expiry(http: httpx.Client, partner: RestPartner) -> None:
    answer = http.post(
        "/auth/token",
        json={"apiKey": partner.credentials.api_key, "apiSecret": partner.credentials.api_secret},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["tokenType"] == "Bearer"
    assert isinstance(body["expiresAt"], int) and body["expiresAt"] > 1_700_000_000
    assert body["token"]


def test_bad_credentials_answer_401_invalid_credentials(
    http: httpx.Client, partner: RestPartner
) -> None:
    for payload in [
        {"apiKey": partner.credentials.api_key, "apiSecret": "wrong"},
        {"apiKey": str(uuid.uuid4()), "apiSecret": partner.credentials.api_secret},
        {"apiKey": "not-a-uuid", "apiSecret": "x"},
        {},
    ]:
        answer = http.post("/auth/token", json=payload)
        assert answer.status_code == 401, answer.text
        assert answer.json()["message"] == "Invalid credentials"
        assert error_reason(answer) == "INVALID_CREDENTIALS"


def test_create_answers_201_with_customer_challenge_and_verification_url(
    partner: RestPartner,
) -> None:
    wallet = new_wallet()
    answer = partner.call(
        "POST", "/customers", json={"chainId": caip10(wallet).lower(), "externalId": "user-1"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert "x-http-status" not in answer.headers
    body = answer.json()
    assert set(body) == {
        "id",
        "externalId",
        "chainId",
        "status",
        "createdAt",
        "updatedAt",
        "challenge",
        "verificationUrl",
    }
    assert uuid.UUID(body["id"])
    assert body["externalId"] == "user-1"
    assert body["chainId"] == caip10(wallet)
    assert body["status"] == "initiating"
    assert RFC3339.match(body["createdAt"]) and RFC3339.match(body["updatedAt"])
    message = base64.b64decode(body["challenge"]).decode()
    assert wallet.address in message and "Chain ID: 1" in message
    assert body["verificationUrl"].startswith("http")


def test_singular_alias_and_v1_prefix_create_too(partner: RestPartner) -> None:
    for path in ["/customer", "/v1/customers", "/v1/customer"]:
        answer = partner.call(
            "POST", path, json={"chainId": caip10(new_wallet()), "externalId": uuid.uuid4().hex}
        )
        assert answer.status_code == 201, (path, answer.text)


def test_get_answers_the_customer_without_challenge_fields(partner: RestPartner) -> None:
    created = partner.create_customer().json()
    for path in [f"/customers/{created['id']}", f"/v1/customers/{created['id']}"]:
        answer = partner.call("GET", path)
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) == {"id", "externalId", "chainId", "status", "createdAt", "updatedAt"}
        assert body["id"] == created["id"]


def test_list_answers_customers_and_next_page_token_newest_first(partner: RestPartner) -> None:
    empty = partner.call("GET", "/customers")
    assert empty.status_code == 200
    assert empty.json() == {"customers": [], "nextPageToken": ""}
    made = [partner.create_customer(external_id=f"ext-{i}").json()["id"] for i in range(3)]
    first = partner.call("GET", "/customers", params={"pageSize": 2}).json()
    assert [c["id"] for c in first["customers"]] == made[::-1][:2]
    assert first["nextPageToken"]
    second = partner.call(
        "GET", "/customers", params={"pageSize": 2, "pageToken": first["nextPageToken"]}
    ).json()
    assert [c["id"] for c in second["customers"]] == [made[0]]
    assert second["nextPageToken"] == ""
    by_external = partner.call("GET", "/customers", params={"externalId": "ext-1"}).json()
    assert [c["id"] for c in by_external["customers"]] == [made[1]]
    by_status = partner.call("GET", "/customers", params={"status": "initiating"}).json()
    assert len(by_status["customers"]) == 3
    assert partner.call("GET", "/customers", params={"status": "active"}).json()["customers"] == []


def test_list_rejects_bad_paging_and_filters(partner: RestPartner) -> None:
    for params in [
        {"pageSize": 501},
        {"pageSize": -1},
        {"pageToken": "garbage!"},
        {"status": "sleeping"},
        {"pageSize": "ten"},
        {"color": "blue"},
    ]:
        answer = partner.call("GET", "/customers", params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert set(answer.json()) >= {"code", "message"}


def test_duplicate_customer_answers_409_and_other_partner_may_reuse(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    chain_id = caip10(new_wallet())
    assert partner.create_customer(chain_id, "dup").status_code == 201
    for again in [partner.create_customer(chain_id, "other"), partner.create_customer(None, "dup")]:
        assert again.status_code == 409
        assert again.json()["message"] == "Customer already exists"
        assert error_reason(again) == "CUSTOMER_ALREADY_EXISTS"
    assert other_partner.create_customer(chain_id, "dup").status_code == 201


def test_invalid_customer_fields_answer_400_naming_the_field(partner: RestPartner) -> None:
    cases = [
        (
            {"chainId": "eip155:1:0xAB16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb", "externalId": "a"},
            "chainId",
        ),
        (
            {"chainId": "eip155:01:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb", "externalId": "a"},
            "chainId",
        ),
        ({"chainId": "eip155:1:0x1234", "externalId": "a"}, "chainId"),
        ({"chainId": "", "externalId": "a"}, "chainId"),
        ({"externalId": "a"}, "chainId"),
        ({"chainId": caip10(new_wallet()), "externalId": ""}, "externalId"),
        ({"chainId": caip10(new_wallet()), "externalId": "x" * 129}, "externalId"),
        ({"chainId": caip10(new_wallet()), "externalId": "bell\u0007"}, "externalId"),
    ]
    for payload, field in cases:
        answer = partner.call("POST", "/customers", json=payload)
        assert answer.status_code == 400, (payload, answer.text)
        assert field in answer.json()["message"]
        assert error_reason(answer) == "INVALID_FIELD"
    assert partner.call("GET", "/customers").json()["customers"] == []


def test_malformed_requests_get_json_4xx_and_write_nothing(partner: RestPartner) -> None:
    headers = {"content-type": "application/json"}
    bodies: list[bytes] = [
        b"{not json",
        b'{"chainId": 5, "externalId": "a"}',
        b'{"chainId": ["x"], "externalId": "a"}',
        b'{"chainId": "eip155:1:0x\xff\xfe", "externalId": "a"}',
        b"[]",
        b'"just a string"',
    ]
    for body in bodies:
        answer = partner.call("POST", "/customers", content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)
        assert set(answer.json()) >= {"code", "message"}
    huge = b'{"chainId": "' + b"a" * (2 * 1024 * 1024) + b'", "externalId": "a"}'
    answer = partner.call("POST", "/customers", content=huge, headers=headers)
    assert answer.status_code == 413
    assert set(answer.json()) >= {"code", "message"}
    assert partner.call("GET", "/customers").json()["customers"] == []


def test_unknown_paths_answer_json_404_and_unknown_methods_json_405(
    partner: RestPartner,
) -> None:
    for method, path, status in [
        ("GET", "/nope", 404),
        ("DELETE", "/customers", 405),
        ("PUT", "/customers/x", 405),
    ]:
        answer = partner.call(method, path)
        assert answer.status_code == status, (method, path, answer.status_code)
        assert set(answer.json()) >= {"code", "message"}


def test_missing_bad_and_expired_tokens_answer_401(
    http: httpx.Client, partner: RestPartner, stack: object
) -> None:
    for headers in [{}, {"Authorization": "Bearer x.y.z"}, {"Authorization": "Token abc"}]:
        answer = http.get("/customers", headers=headers)
        assert answer.status_code == 401, answer.text
        assert set(answer.json()) >= {"code", "message"}


def test_unknown_and_foreign_ids_answer_404(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    mine = partner.create_customer().json()["id"]
    for customer_id in [str(uuid.uuid4()), "not-a-uuid", mine]:
        for method, path in [
            ("GET", f"/customers/{customer_id}"),
            ("PATCH", f"/customers/{customer_id}/deactivate"),
            ("PATCH", f"/customers/{customer_id}/activate"),
            ("GET", f"/customers/{customer_id}/challenge"),
            ("PATCH", f"/simulator/customers/{customer_id}/verify"),
            ("GET", f"/customers/{customer_id}/accounts"),
        ]:
            answer = other_partner.call(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert error_reason(answer) == "CUSTOMER_NOT_FOUND"
    assert partner.call("GET", f"/customers/{mine}").json()["status"] == "initiating"


def test_onboarding_through_challenge_and_simulator_reaches_active(partner: RestPartner) -> None:
    wallet = new_wallet()
    created = partner.call(
        "POST", "/customers", json={"chainId": caip10(wallet), "externalId": "onboard"}
    ).json()
    challenge = partner.call("GET", f"/customers/{created['id']}/challenge")
    assert challenge.status_code == 200
    assert challenge.json()["challenge"] == created["challenge"]
    assert RFC3339.match(challenge.json()["expiresAt"])
    signed = partner.call(
        "POST",
        f"/customers/{created['id']}/challenge/sign",
        json={
            "signature": sign_challenge(wallet, created["challenge"]),
            "signer": created["chainId"],
            "challenge": created["challenge"],
        },
    )
    assert signed.status_code == 204
    assert signed.content == b""
    assert "content-type" not in signed.headers
    assert partner.call("GET", f"/customers/{created['id']}").json()["status"] == "verifying"
    verified = partner.call("PATCH", f"/simulator/customers/{created['id']}/verify")
    assert verified.status_code == 202
    assert verified.content == b""
    assert partner.call("GET", f"/customers/{created['id']}").json()["status"] == "active"


def test_simulator_reject_makes_the_customer_rejected_for_good(partner: RestPartner) -> None:
    wallet = new_wallet()
    created = partner.call(
        "POST", "/customers", json={"chainId": caip10(wallet), "externalId": "rej"}
    ).json()
    assert partner.call("PATCH", f"/simulator/customers/{created['id']}/reject").status_code == 202
    signed = partner.call(
        "POST",
        f"/customers/{created['id']}/challenge/sign",
        json={
            "signature": sign_challenge(wallet, created["challenge"]),
            "signer": created["chainId"],
            "challenge": created["challenge"],
        },
    )
    assert signed.status_code == 204
    assert partner.call("GET", f"/customers/{created['id']}").json()["status"] == "rejected"
    again = partner.call("PATCH", f"/customers/{created['id']}/activate")
    assert again.status_code == 409
    assert "rejected" in again.json()["message"]


def test_deactivate_and_activate_answer_200_and_are_idempotent(partner: RestPartner) -> None:
    customer = partner.active_customer()
    path = f"/customers/{customer['id']}"
    for _ in range(2):
        answer = partner.call("PATCH", f"{path}/deactivate")
        assert answer.status_code == 200
        assert answer.json()["status"] == "inactive"
    for _ in range(2):
        answer = partner.call("PATCH", f"{path}/activate")
        assert answer.status_code == 200
        assert answer.json()["status"] == "active"


def test_transition_from_wrong_state_answers_409_with_the_state(partner: RestPartner) -> None:
    created = partner.create_customer().json()
    answer = partner.call("PATCH", f"/customers/{created['id']}/deactivate")
    assert answer.status_code == 409
    assert "initiating" in answer.json()["message"]
    assert error_reason(answer) == "INVALID_STATE_TRANSITION"
    assert partner.call("GET", f"/customers/{created['id']}").json()["status"] == "initiating"
