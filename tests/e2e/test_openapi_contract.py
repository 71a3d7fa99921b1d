"""The published contract against the live gateway: /openapi.json and /docs answer without
a token, and what real calls answer (statuses, bodies, error reasons) is what the document
says (tests/helpers/openapi.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from client.idempotency import new_key
from client.signing import SigningAuth, generate_key, public_key_b64
from gateway.docs import files
from scripts.openapi import OUTPUT
from tests.e2e.conftest import Stack
from tests.helpers.openapi import check, document, validate
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet, sign_challenge

# The document does not depend on the database: one stack is enough.
pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


def test_openapi_json_and_docs_answer_without_a_token(http: httpx.Client) -> None:
    answer = http.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == OUTPUT.read_bytes()
    for path, (file, content_type) in files(OUTPUT).items():
        served = http.get(path)
        assert served.status_code == 200, path
        assert served.headers["content-type"] == content_type, path
        assert served.content == file.read_bytes(), path
        assert "default-src 'self'" in served.headers["content-security-policy"]
    assert (
        http.get("/docs", params={"from": "readme"}).headers["content-type"].startswith("text/html")
    )


def test_the_docs_routes_serve_files_only(http: httpx.Client) -> None:
    # Other methods are a 405 naming the two served (gateway/methods.py); other files 404.
    refused = http.post("/docs", content=b"{}")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    assert refused.json()["details"][0]["reason"] == "METHOD_NOT_ALLOWED"
    missing = http.get("/docs/swagger-ui-bundle.js.map")
    assert missing.status_code == 404
    assert missing.json()["details"][0]["reason"] == "ROUTE_NOT_FOUND"


def test_an_onboarding_answers_the_documented_statuses_and_bodies(partner: RestPartner) -> None:
    wallet = new_wallet()
    created = partner.call(
        "POST", "/customers", json={"chainId": caip10(wallet), "externalId": wallet.address}
    )
    assert check("POST", "/customers", created)["description"] == "Created"
    customer = created.json()
    path_id = customer["id"]
    challenge = partner.call("GET", f"/customers/{path_id}/challenge")
    check("GET", "/customers/{customerId}/challenge", challenge)
    signed = partner.call(
        "POST",
        f"/customers/{path_id}/challenge/sign",
        json={
            "signature": sign_challenge(wallet, customer["challenge"]),
            "signer": customer["chainId"],
            "challenge": customer["challenge"],
        },
    )
    assert signed.status_code == 204
    check("POST", "/customers/{customerId}/challenge/sign", signed)
    verified = partner.call("PATCH", f"/simulator/customers/{path_id}/verify")
    assert verified.status_code == 202
    check("PATCH", "/simulator/customers/{customerId}/verify", verified)
    check("GET", "/customers/{customerId}", partner.call("GET", f"/customers/{path_id}"))
    check("GET", "/customers", partner.call("GET", "/customers", params={"pageSize": 2}))

    account = partner.call(
        "POST",
        f"/customers/{path_id}/accounts",
        json={"type": "card_account", "currencies": ["EUR"]},
    )
    assert account.status_code == 201
    check("POST", "/customers/{customerId}/accounts", account)
    card = partner.call("POST", f"/accounts/{account.json()['id']}/cards", json={"type": "virtual"})
    assert card.status_code == 201
    check("POST", "/accounts/{accountId}/cards", card)
    check(
        "GET",
        "/accounts/{accountId}/cards",
        partner.call("GET", f"/accounts/{account.json()['id']}/cards"),
    )
    deactivated = partner.call("PATCH", f"/customers/{path_id}/deactivate")
    check("PATCH", "/customers/{customerId}/deactivate", deactivated)
    check(
        "PATCH",
        "/customers/{customerId}/activate",
        partner.call("PATCH", f"/customers/{path_id}/activate"),
    )
    events = partner.call("GET", "/events", params={"after": 0})
    check("GET", "/events", events)
    assert all(isinstance(e["seq"], str) for e in events.json()["events"])  # int64 as strings


def test_errors_answer_the_documented_statuses_and_reasons(partner: RestPartner) -> None:
    missing = partner.call("GET", f"/customers/{uuid.uuid4()}")
    assert missing.status_code == 404
    check("GET", "/customers/{customerId}", missing)

    wallet = caip10(new_wallet())
    body = {"chainId": wallet, "externalId": wallet[-12:]}
    first = partner.call("POST", "/customers", json=body)
    duplicate = partner.call("POST", "/customers", json=body)
    assert duplicate.status_code == 409
    check("POST", "/customers", duplicate)
    initiating = first.json()["id"]
    conflict = partner.call("PATCH", f"/customers/{initiating}/activate")
    assert conflict.status_code == 409
    check("PATCH", "/customers/{customerId}/activate", conflict)

    no_key = partner.call("POST", "/customers", json=body, idempotent=False)
    assert no_key.status_code == 400
    check("POST", "/customers", no_key)
    key = new_key()
    partner.call("POST", "/customers", json=body, headers={"Idempotency-Key": key})
    reused = partner.call(
        "POST", "/customers", json={**body, "externalId": "other"}, headers={"Idempotency-Key": key}
    )
    assert reused.status_code == 422
    check("POST", "/customers", reused)

    unsigned = partner.call("GET", "/customers", signed=False)
    assert unsigned.status_code == 401
    check("GET", "/customers", unsigned)
    unknown_query = partner.call("GET", "/customers", params={"nope": "1"})
    assert unknown_query.status_code == 400
    check("GET", "/customers", unknown_query)
    too_large = partner.call("POST", "/customers", content=b"{" + b" " * 70_000 + b"}")
    assert too_large.status_code == 413
    check("POST", "/customers", too_large)
    bad_field = partner.call("GET", "/customers", params={"pageSize": 501})
    check("GET", "/customers", bad_field)


def test_keys_and_webhooks_answer_their_two_success_statuses(partner: RestPartner) -> None:
    second = generate_key("ed25519")
    registered = partner.call("PUT", "/auth/signing", json={"publicKey": public_key_b64(second)})
    assert registered.status_code == 201
    check("PUT", "/auth/signing", registered)
    again = partner.call("PUT", "/auth/signing", json={"publicKey": public_key_b64(second)})
    assert again.status_code == 200
    check("PUT", "/auth/signing", again)
    check("GET", "/auth/signing", partner.call("GET", "/auth/signing"))
    deleted = partner.call("DELETE", f"/auth/signing/{second.key_id}")
    assert deleted.status_code == 204
    check("DELETE", "/auth/signing/{keyId}", deleted)

    hook = {"callbackUrl": "https://hooks.example.com/in", "types": ["customer.updated"]}
    created = partner.call("PUT", "/webhooks", json=hook)
    assert created.status_code == 201
    check("PUT", "/webhooks", created)
    updated = partner.call("PUT", "/webhooks", json={**hook, "id": created.json()["id"]})
    assert updated.status_code == 200
    check("PUT", "/webhooks", updated)
    check("GET", "/webhooks", partner.call("GET", "/webhooks"))
    gone = partner.call("DELETE", f"/webhooks/{created.json()['id']}")
    assert gone.status_code == 204
    check("DELETE", "/webhooks/{id}", gone)


def test_a_token_answer_and_a_refused_token_match_the_document(
    http: httpx.Client, partner: RestPartner
) -> None:
    credentials = partner.credentials
    token = http.post(
        "/auth/token", json={"apiKey": credentials.api_key, "apiSecret": credentials.api_secret}
    )
    check("POST", "/auth/token", token)
    refused = http.post("/auth/token", json={"apiKey": credentials.api_key, "apiSecret": "wrong"})
    assert refused.status_code == 401
    check("POST", "/auth/token", refused)


def test_the_watch_stream_is_server_sent_events_of_documented_messages(
    stack: Stack, partner: RestPartner
) -> None:
    partner.create_customer()
    content = document()["paths"]["/customers:watch"]["get"]["responses"]["200"]["content"]
    message_schema = content["text/event-stream"]["x-sse-data"]
    headers = {"Authorization": f"Bearer {partner.token}"}
    with (
        httpx.Client(base_url=stack.base_url, timeout=httpx.Timeout(20, read=20)) as client,
        client.stream(
            "GET", "/customers:watch?after=0", headers=headers, auth=SigningAuth(partner.key)
        ) as answer,
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        first: dict[str, Any] = {}
        for line in answer.iter_lines():
            if line.startswith("data:"):
                first = json.loads(line[len("data:") :])
                break
    validate(message_schema, first)
    assert first["customer"]["status"] == "initiating"
