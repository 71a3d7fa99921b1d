"""JSON the published contract does not allow, though proto3 parsing would take it (found by
the contract fuzz): refused with a 400 INVALID_REQUEST naming the field, through the real
Envoy and server, and nothing is done or recorded: no row, no event, no idempotency record."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from client.idempotency import new_key
from tests.e2e.conftest import error_reason
from tests.helpers.rest import RestPartner

pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


def field_of(answer: httpx.Response) -> str:
    """The BadRequest field violation's field."""
    for detail in answer.json()["details"]:
        if detail["@type"].endswith("google.rpc.BadRequest"):
            return str(detail["fieldViolations"][0]["field"])
    raise AssertionError(answer.text)


def last_seq(partner: RestPartner) -> int:
    events: list[dict[str, Any]] = []
    token = ""
    while True:
        page = partner.call("GET", "/events", params={"pageToken": token} if token else None)
        assert page.status_code == 200, page.text
        events += page.json()["events"]
        token = page.json()["nextPageToken"]
        if not token:
            return int(events[-1]["seq"]) if events else 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "card_account", "currencies": "EUR"}, "currencies"),
        ({"type": None, "currencies": ["EUR"]}, "type"),
        ({"type": 1, "currencies": ["EUR"]}, "type"),
        ({"type": "card_account", "currencies": ["EUR", None]}, "currencies[1]"),
    ],
)
def test_json_proto3_would_take_but_the_contract_refuses_is_a_400_that_changes_nothing(
    partner: RestPartner, body: dict[str, Any], field: str
) -> None:
    customer = partner.active_customer()
    before = last_seq(partner)
    key = new_key()
    path = f"/customers/{customer['id']}/accounts"
    refused = partner.call("POST", path, content=json.dumps(body), headers={"Idempotency-Key": key})
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/json"
    assert error_reason(refused) == "INVALID_REQUEST"
    assert field_of(refused) == field
    assert field in refused.json()["message"]
    accounts = partner.call("GET", path)
    assert accounts.json()["accounts"] == []
    assert last_seq(partner) == before
    # No idempotency record either: the same key with a good body runs, once.
    good = {"type": "card_account", "currencies": ["EUR"]}
    created = partner.call("POST", path, json=good, headers={"Idempotency-Key": key})
    assert created.status_code == 201, created.text


def test_a_numeric_enum_in_the_query_is_a_400_and_its_name_works(partner: RestPartner) -> None:
    refused = partner.call("GET", "/customers", params={"status": "2"})
    assert refused.status_code == 400, refused.text
    assert error_reason(refused) == "INVALID_REQUEST"
    assert field_of(refused) == "status"
    answer = partner.call("GET", "/customers", params={"status": "active", "pageSize": "1"})
    assert answer.status_code == 200, answer.text


def test_a_null_webhook_url_is_a_400_and_no_subscription_is_made(partner: RestPartner) -> None:
    refused = partner.call("PUT", "/webhooks", json={"callbackUrl": None, "types": []})
    assert refused.status_code == 400, refused.text
    assert error_reason(refused) == "INVALID_REQUEST"
    assert field_of(refused) == "callbackUrl"
    assert partner.call("GET", "/webhooks").json()["webhooks"] == []


def test_v1_paths_are_checked_the_same_way(partner: RestPartner) -> None:
    customer = partner.active_customer()
    refused = partner.call(
        "POST", f"/v1/customers/{customer['id']}/accounts", json={"currencies": "EUR"}
    )
    assert refused.status_code == 400, refused.text
    assert field_of(refused) == "currencies"
