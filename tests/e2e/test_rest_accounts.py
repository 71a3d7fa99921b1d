"""Accounts, cards and the deactivation cascade over REST through the real Envoy."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.e2e.conftest import error_reason
from tests.helpers.rest import RestPartner


def open_account(partner: RestPartner, customer_id: str) -> dict[str, Any]:
    answer = partner.call(
        "POST",
        f"/customers/{customer_id}/accounts",
        json={"type": "card_account", "currencies": ["EUR"]},
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def issue_card(partner: RestPartner, account_id: str) -> dict[str, Any]:
    answer = partner.call("POST", f"/accounts/{account_id}/cards", json={"type": "virtual"})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_account_and_card_create_answer_201_with_contract_fields(partner: RestPartner) -> None:
    customer = partner.active_customer()
    account = open_account(partner, customer["id"])
    assert set(account) == {
        "id",
        "customerId",
        "type",
        "currencies",
        "status",
        "createdAt",
        "updatedAt",
    }
    assert account["customerId"] == customer["id"]
    assert account["type"] == "card_account" and account["currencies"] == ["EUR"]
    assert account["status"] == "active"
    card = issue_card(partner, account["id"])
    assert set(card) == {
        "id",
        "accountId",
        "type",
        "network",
        "maskedPan",
        "status",
        "createdAt",
        "updatedAt",
    }
    assert card["accountId"] == account["id"] and card["type"] == "virtual"
    assert card["status"] == "active" and re.fullmatch(r"\d{6}\*{6}\d{4}", card["maskedPan"])


def test_lists_answer_accounts_and_cards_with_page_tokens(partner: RestPartner) -> None:
    customer = partner.active_customer()
    first, second = open_account(partner, customer["id"]), open_account(partner, customer["id"])
    listed = partner.call("GET", f"/customers/{customer['id']}/accounts").json()
    assert [a["id"] for a in listed["accounts"]] == [second["id"], first["id"]]
    assert listed["nextPageToken"] == ""
    paged = partner.call(
        "GET", f"/customers/{customer['id']}/accounts", params={"pageSize": 1}
    ).json()
    assert [a["id"] for a in paged["accounts"]] == [second["id"]] and paged["nextPageToken"]
    card = issue_card(partner, first["id"])
    cards = partner.call("GET", f"/accounts/{first['id']}/cards").json()
    assert cards == {"cards": [card], "nextPageToken": ""}
    assert partner.call("GET", f"/accounts/{second['id']}/cards").json()["cards"] == []


def test_accounts_need_an_active_customer_and_cards_an_active_account(
    partner: RestPartner,
) -> None:
    pending = partner.create_customer().json()
    answer = partner.call(
        "POST",
        f"/customers/{pending['id']}/accounts",
        json={"type": "card_account", "currencies": ["EUR"]},
    )
    assert answer.status_code == 409 and "initiating" in answer.json()["message"]
    customer = partner.active_customer()
    account = open_account(partner, customer["id"])
    assert partner.call("PATCH", f"/accounts/{account['id']}/deactivate").status_code == 200
    answer = partner.call("POST", f"/accounts/{account['id']}/cards", json={"type": "virtual"})
    assert answer.status_code == 409 and "inactive" in answer.json()["message"]
    assert partner.call("GET", f"/accounts/{account['id']}/cards").json()["cards"] == []


def test_invalid_account_and_card_bodies_answer_400(partner: RestPartner) -> None:
    customer = partner.active_customer()
    for payload in [
        {"type": "card_account", "currencies": []},
        {"type": "card_account", "currencies": ["euro"]},
        {"currencies": ["EUR"]},
        {"type": "savings", "currencies": ["EUR"]},
        {"type": "card_account", "currencies": [5]},
    ]:
        answer = partner.call("POST", f"/customers/{customer['id']}/accounts", json=payload)
        assert answer.status_code == 400, (payload, answer.text)
    account = open_account(partner, customer["id"])
    for payload in [{}, {"type": "plastic"}, {"type": 7}]:
        answer = partner.call("POST", f"/accounts/{account['id']}/cards", json=payload)
        assert answer.status_code == 400, (payload, answer.text)
    listed = partner.call("GET", f"/customers/{customer['id']}/accounts").json()
    assert [a["id"] for a in listed["accounts"]] == [account["id"]]


def test_a_single_currency_string_is_a_400_not_a_one_item_list(partner: RestPartner) -> None:
    """proto3 JSON parsing would read a scalar as a one-item list; the contract says array
    (server/rpc/rest_json.py; tests/e2e/test_rest_strict_json.py has the rest)."""
    customer = partner.active_customer()
    answer = partner.call(
        "POST",
        f"/customers/{customer['id']}/accounts",
        json={"type": "card_account", "currencies": "EUR"},
    )
    assert answer.status_code == 400, answer.text
    assert error_reason(answer) == "INVALID_REQUEST"


def test_cascade_deactivates_everything_and_restores_only_what_it_changed(
    partner: RestPartner,
) -> None:
    customer = partner.active_customer()
    cascaded = open_account(partner, customer["id"])
    own_choice = open_account(partner, customer["id"])
    card = issue_card(partner, cascaded["id"])
    switched_off_card = issue_card(partner, cascaded["id"])
    assert partner.call("PATCH", f"/accounts/{own_choice['id']}/deactivate").json()["status"] == (
        "inactive"
    )
    assert partner.call("PATCH", f"/cards/{switched_off_card['id']}/deactivate").status_code == 200

    off = partner.call("PATCH", f"/customers/{customer['id']}/deactivate")
    assert off.status_code == 200 and off.json()["status"] == "inactive"
    accounts = partner.call("GET", f"/customers/{customer['id']}/accounts").json()["accounts"]
    assert {a["status"] for a in accounts} == {"inactive"}
    cards = partner.call("GET", f"/accounts/{cascaded['id']}/cards").json()["cards"]
    assert {c["status"] for c in cards} == {"inactive"}

    on = partner.call("PATCH", f"/customers/{customer['id']}/activate")
    assert on.status_code == 200 and on.json()["status"] == "active"
    accounts = partner.call("GET", f"/customers/{customer['id']}/accounts").json()["accounts"]
    assert {a["id"]: a["status"] for a in accounts} == {
        cascaded["id"]: "active",
        own_choice["id"]: "inactive",
    }
    cards = partner.call("GET", f"/accounts/{cascaded['id']}/cards").json()["cards"]
    assert {c["id"]: c["status"] for c in cards} == {
        card["id"]: "active",
        switched_off_card["id"]: "inactive",
    }


def test_account_and_card_switches_are_no_ops_in_the_asked_state(partner: RestPartner) -> None:
    customer = partner.active_customer()
    account = open_account(partner, customer["id"])
    card = issue_card(partner, account["id"])
    # Cards first: switching the account off and on would cascade to its card.
    for path, entity in [(f"/cards/{card['id']}", card), (f"/accounts/{account['id']}", account)]:
        same = partner.call("PATCH", f"{path}/activate")
        assert same.status_code == 200 and same.json() == entity
        for _ in range(2):
            assert partner.call("PATCH", f"{path}/deactivate").json()["status"] == "inactive"
        assert partner.call("PATCH", f"{path}/activate").json()["status"] == "active"


def test_account_deactivation_takes_its_cards_and_activation_brings_them_back(
    partner: RestPartner,
) -> None:
    customer = partner.active_customer()
    account = open_account(partner, customer["id"])
    card = issue_card(partner, account["id"])
    partner.call("PATCH", f"/accounts/{account['id']}/deactivate")
    assert (
        partner.call("GET", f"/accounts/{account['id']}/cards").json()["cards"][0]["status"]
        == "inactive"
    )
    answer = partner.call("PATCH", f"/cards/{card['id']}/activate")
    assert answer.status_code == 409 and "account" in answer.json()["message"]
    partner.call("PATCH", f"/accounts/{account['id']}/activate")
    assert (
        partner.call("GET", f"/accounts/{account['id']}/cards").json()["cards"][0]["status"]
        == "active"
    )


def test_foreign_or_unknown_accounts_and_cards_answer_404(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    customer = partner.active_customer()
    account = open_account(partner, customer["id"])
    card = issue_card(partner, account["id"])
    for entity_id in [account["id"], str(uuid.uuid4()), "nope"]:
        for method, path, body in [
            ("GET", f"/accounts/{entity_id}/cards", None),
            ("POST", f"/accounts/{entity_id}/cards", {"type": "virtual"}),
            ("PATCH", f"/accounts/{entity_id}/deactivate", None),
            ("PATCH", f"/accounts/{entity_id}/activate", None),
        ]:
            answer = other_partner.call(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.text)
            assert error_reason(answer) == "ACCOUNT_NOT_FOUND"
    for entity_id in [card["id"], str(uuid.uuid4())]:
        for action in ["deactivate", "activate"]:
            answer = other_partner.call("PATCH", f"/cards/{entity_id}/{action}")
            assert answer.status_code == 404
            assert error_reason(answer) == "CARD_NOT_FOUND"
    assert partner.call("GET", f"/accounts/{account['id']}/cards").json()["cards"] == [card]
