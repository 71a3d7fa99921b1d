"""The proto's REQUIRED annotations (what gen/openapi.json marks `required`) and what the
server refuses as missing agree, method by method, through the real Envoy and server:

- every field annotated REQUIRED, left out of an otherwise valid request, is a 400
  INVALID_FIELD naming that field;
- every other body field, left out, is not refused as missing (the request goes on to
  whatever its other fields decide);
- every REST method with a JSON body is covered here, so a new method or field cannot slip
  past: its valid request must be added to VALID.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from google.protobuf.descriptor import Descriptor

from client.signing import generate_key, public_key_b64
from server.rpc.policy import POLICY
from server.rpc.required import required_fields
from server.rpc.services import SERVICES
from tests.e2e.conftest import error_reason
from tests.helpers.rest import RestPartner
from tests.helpers.wallets import caip10, new_wallet, sign_challenge

# What a valid request needs: (HTTP method, path, JSON body), built fresh for each try.
Request = tuple[str, str, dict[str, Any]]


def _customer(partner: RestPartner) -> Request:
    wallet = caip10(new_wallet())
    return "POST", "/customers", {"chainId": wallet, "externalId": f"u-{uuid.uuid4().hex[:8]}"}


def _account(partner: RestPartner) -> Request:
    customer = partner.active_customer()
    return (
        "POST",
        f"/customers/{customer['id']}/accounts",
        {"type": "card_account", "currencies": ["EUR"]},
    )


def _card(partner: RestPartner) -> Request:
    method, path, body = _account(partner)
    account = partner.call(method, path, json=body).json()
    return "POST", f"/accounts/{account['id']}/cards", {"type": "virtual"}


def _signature(partner: RestPartner) -> Request:
    wallet = new_wallet()
    created = partner.call(
        "POST", "/customers", json={"chainId": caip10(wallet), "externalId": wallet.address}
    ).json()
    body = {
        "signature": sign_challenge(wallet, created["challenge"]),
        "signer": created["chainId"],
        "challenge": created["challenge"],
    }
    return "POST", f"/customers/{created['id']}/challenge/sign", body


def _signing_key(partner: RestPartner) -> Request:
    return "PUT", "/auth/signing", {"publicKey": public_key_b64(generate_key("ed25519"))}


def _webhook(partner: RestPartner) -> Request:
    body = {"id": "", "callbackUrl": "https://hooks.example.com/in", "types": ["card.updated"]}
    return "PUT", "/webhooks", body


def _subscription(partner: RestPartner) -> str:
    method, path, body = _webhook(partner)
    return str(partner.call(method, path, json=body).json()["id"])


def _rotation(partner: RestPartner) -> Request:
    return "POST", f"/webhooks/{_subscription(partner)}/secret/rotate", {"overlapSeconds": 60}


def _replay(partner: RestPartner) -> Request:
    return "POST", f"/webhooks/{_subscription(partner)}/replay", {"afterSequence": "0"}


def _token(partner: RestPartner) -> Request:
    credentials = partner.credentials
    return (
        "POST",
        "/auth/token",
        {"apiKey": credentials.api_key, "apiSecret": credentials.api_secret},
    )


VALID: dict[str, Callable[[RestPartner], Request]] = {
    "/customers.v1.CustomerService/CreateCustomer": _customer,
    "/customers.v1.CustomerService/SignChallenge": _signature,
    "/customers.v1.AccountService/CreateAccount": _account,
    "/customers.v1.CardService/CreateCard": _card,
    "/customers.v1.AuthService/RegisterSigningKey": _signing_key,
    "/customers.v1.AuthService/CreateToken": _token,
    "/customers.v1.WebhookService/PutWebhook": _webhook,
    "/customers.v1.WebhookService/RotateWebhookSecret": _rotation,
    "/customers.v1.WebhookService/ReplayWebhookEvents": _replay,
}


def _inputs() -> dict[str, Descriptor]:
    return {
        f"/{service.full_name}/{method.name}": method.input_type
        for service in SERVICES
        for method in service.methods
    }


def _body_fields(method: str) -> list[tuple[str, bool]]:
    """(json name, REQUIRED) of the fields a method's JSON body carries (not its path's)."""
    binding = POLICY[method].bindings[0]
    in_path = set(re.findall(r"{(\w+)", binding.template))
    message = _inputs()[method]
    required = set(required_fields(message))
    return [(f.json_name, f in required) for f in message.fields if f.name not in in_path]


def test_every_method_with_a_json_body_or_a_required_field_has_a_valid_request() -> None:
    needing = set()
    for method, message in _inputs().items():
        body = POLICY[method].bindings[0].body
        if message.full_name == "google.api.HttpBody" or body == "form":
            continue  # raw bytes, no JSON fields (the KYC side)
        if required_fields(message) or (body and _body_fields(method)):
            needing.add(method)
    assert needing == set(VALID)


CASES = [(method, name, req) for method in VALID for name, req in _body_fields(method)]


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("method", "field", "required"), CASES, ids=[f"{m.rsplit('/', 1)[1]}-{f}" for m, f, _ in CASES]
)
def test_a_field_left_out_is_refused_as_missing_exactly_when_the_proto_requires_it(
    partner: RestPartner, method: str, field: str, required: bool
) -> None:
    verb, path, body = VALID[method](partner)
    del body[field]
    answer = partner.call(verb, path, json=body)
    if required:
        assert answer.status_code == 400, answer.text
        assert error_reason(answer) == "INVALID_FIELD"
        assert _violation(answer) == field
    else:
        assert not (answer.status_code == 400 and _violation(answer) == field), answer.text


def _violation(answer: httpx.Response) -> str | None:
    for detail in answer.json().get("details", []):
        if detail["@type"].endswith("google.rpc.ErrorInfo"):
            return detail.get("metadata", {}).get("field")
    return None
