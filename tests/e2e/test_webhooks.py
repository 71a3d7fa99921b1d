"""Webhook subscriptions and deliveries through the real Envoy and the real server, to real
receivers on loopback that verify Standard Webhooks signatures and dedupe on eventId.

The stack runs with a shortened retry schedule (tests/e2e/conftest.py: 0.2 s base, 3 s
max age) and in development mode, so loopback callback URLs are allowed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import Stack, error_reason
from tests.e2e.test_rest_accounts import issue_card, open_account
from tests.helpers.processes import free_port
from tests.helpers.receivers import Receiver, delivery_rows, running_receiver
from tests.helpers.rest import RestPartner

ALL_TYPES = ["customer.updated", "account.updated", "card.updated"]
SUBSCRIPTION_FIELDS = {"id", "callbackUrl", "types", "createdAt", "updatedAt", "status"}


def subscribe(
    partner: RestPartner, receiver: Receiver | str, types: list[str] | None = None
) -> dict[str, Any]:
    url = receiver if isinstance(receiver, str) else receiver.url
    answer = partner.call(
        "PUT", "/webhooks", json={"callbackUrl": url, "types": types or ALL_TYPES}
    )
    assert answer.status_code == 201, answer.text
    created = dict(answer.json())
    if isinstance(receiver, Receiver):
        receiver.secret = created["secret"]
    return created


def partner_events(partner: RestPartner) -> list[dict[str, Any]]:
    answer = partner.call("GET", "/events", params={"pageSize": 1000})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


def test_subscriptions_crud_shows_the_secret_only_on_create(partner: RestPartner) -> None:
    created = subscribe(partner, "https://hooks.example.com/a", ["customer.updated"])
    assert set(created) == SUBSCRIPTION_FIELDS | {"secret"}
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # a secret the Standard Webhooks libraries accept
    assert created["callbackUrl"] == "https://hooks.example.com/a"
    assert created["types"] == ["customer.updated"]

    fetched = partner.call("GET", f"/webhooks/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == {k: v for k, v in created.items() if k != "secret"}

    updated = partner.call(
        "PUT",
        "/webhooks",
        json={
            "id": created["id"],
            "callbackUrl": "https://hooks.example.com/b",
            "types": ["card.updated", "account.updated"],
        },
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert set(body) == SUBSCRIPTION_FIELDS
    assert body["callbackUrl"] == "https://hooks.example.com/b"
    assert body["types"] == ["card.updated", "account.updated"]
    assert body["createdAt"] == created["createdAt"] and body["updatedAt"] >= created["updatedAt"]

    second = subscribe(partner, "http://hooks.example.com:8443/c")
    listed = partner.call("GET", "/webhooks").json()
    assert [w["id"] for w in listed["webhooks"]] == [second["id"], created["id"]]
    assert all(set(w) == SUBSCRIPTION_FIELDS for w in listed["webhooks"])

    deleted = partner.call("DELETE", f"/webhooks/{created['id']}")
    assert deleted.status_code == 204, deleted.text
    gone = partner.call("GET", f"/webhooks/{created['id']}")
    assert gone.status_code == 404 and error_reason(gone) == "WEBHOOK_NOT_FOUND"
    again = partner.call("DELETE", f"/webhooks/{created['id']}")
    assert again.status_code == 404 and error_reason(again) == "WEBHOOK_NOT_FOUND"
    assert [w["id"] for w in partner.call("GET", "/webhooks").json()["webhooks"]] == [second["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"callbackUrl": "ftp://hooks.example.com/", "types": ALL_TYPES}, "callbackUrl"),
        ({"callbackUrl": "not a url", "types": ALL_TYPES}, "callbackUrl"),
        ({"callbackUrl": "https://user:pw@hooks.example.com/", "types": ALL_TYPES}, "callbackUrl"),
        ({"callbackUrl": "https:///path-only", "types": ALL_TYPES}, "callbackUrl"),
        ({"callbackUrl": "https://x.example/" + "a" * 2048, "types": ALL_TYPES}, "callbackUrl"),
        ({"types": ALL_TYPES}, "callbackUrl"),
        ({"callbackUrl": "https://hooks.example.com/", "types": ["customer.created"]}, "types"),
        ({"callbackUrl": "https://hooks.example.com/", "types": []}, "types"),
        (
            {
                "callbackUrl": "https://hooks.example.com/",
                "types": ["card.updated", "card.updated"],
            },
            "types",
        ),
    ],
)
def test_invalid_subscriptions_answer_400_naming_the_field(
    partner: RestPartner, body: dict[str, Any], field: str
) -> None:
    answer = partner.call("PUT", "/webhooks", json=body)
    assert answer.status_code == 400, answer.text
    assert error_reason(answer) == "INVALID_FIELD"
    assert answer.json()["details"][0]["metadata"]["field"] == field


def test_another_partners_subscription_is_not_found(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    mine = subscribe(partner, "https://hooks.example.com/mine")
    for method, path, body in [
        ("GET", f"/webhooks/{mine['id']}", None),
        ("DELETE", f"/webhooks/{mine['id']}", None),
        (
            "PUT",
            "/webhooks",
            {"id": mine["id"], "callbackUrl": "https://evil.example/", "types": ALL_TYPES},
        ),
    ]:
        answer = other_partner.call(method, path, json=body)
        assert answer.status_code == 404, (method, answer.text)
        assert error_reason(answer) == "WEBHOOK_NOT_FOUND"
    assert other_partner.call("GET", "/webhooks").json() == {"webhooks": []}
    unknown = partner.call(
        "PUT",
        "/webhooks",
        json={"id": "not-a-uuid", "callbackUrl": "https://hooks.example.com/", "types": ALL_TYPES},
    )
    assert unknown.status_code == 404 and error_reason(unknown) == "WEBHOOK_NOT_FOUND"
    # Untouched by all of that.
    assert (
        partner.call("GET", f"/webhooks/{mine['id']}").json()["callbackUrl"] == mine["callbackUrl"]
    )


def test_a_whole_lifecycle_is_delivered_signed_event_by_event(partner: RestPartner) -> None:
    with running_receiver() as receiver:
        subscribe(partner, receiver)
        customer = partner.active_customer()
        account = open_account(partner, customer["id"])
        card = issue_card(partner, account["id"])
        off = partner.call("PATCH", f"/customers/{customer['id']}/deactivate")
        assert off.status_code == 200, off.text

        events = partner_events(partner)
        wanted = [e["eventId"] for e in events]
        receiver.wait_for(lambda r: r.has_events(wanted))

    assert all(a.verified for a in receiver.attempts), "every request carried a good signature"
    assert set(receiver.deliveries) == set(wanted)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for body in receiver.deliveries.values():
        by_type.setdefault(body["webhookType"], []).append(body)
    assert set(by_type) == set(ALL_TYPES)
    # The flat body: webhookType, eventId, then the entity as GET shows it.
    sample = receiver.deliveries[wanted[0]]
    assert list(sample)[:2] == ["webhookType", "eventId"]
    assert set(sample) == {"webhookType", "eventId", *customer}
    # The newest event of each entity carries its final (cascaded) status.
    last: dict[str, dict[str, Any]] = {}
    for event in events:  # oldest first
        body = receiver.deliveries[event["eventId"]]
        last[body["id"]] = body
    assert last[customer["id"]]["status"] == "inactive"
    assert last[account["id"]]["status"] == "inactive"
    assert last[card["id"]]["status"] == "inactive"
    assert last[card["id"]]["maskedPan"] == card["maskedPan"]
    # webhook-id is the eventId.
    assert all(a.headers["webhook-id"] == _body_id(a.body) for a in receiver.attempts)


def _body_id(body: bytes) -> str:
    return str(json.loads(body)["eventId"])


def test_a_failed_attempt_is_retried_with_the_same_id_and_a_fresh_timestamp(
    partner: RestPartner,
) -> None:
    # The first answer (a 500) comes after a second, so the retry is signed in a later second.
    with running_receiver(Receiver(statuses=[500], first_delay=1.1)) as receiver:
        subscribe(partner, receiver, ["customer.updated"])
        created = partner.create_customer()
        assert created.status_code == 201
        receiver.wait_for(lambda r: len(r.deliveries) == 1)
    first, second = receiver.attempts[0], receiver.attempts[1]
    assert (first.answered, second.answered) == (500, 200)
    assert first.verified and second.verified
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    assert first.body == second.body
    delivered = receiver.deliveries[first.headers["webhook-id"]]
    assert delivered["id"] == created.json()["id"]


def rows_once_failed(database_url: str, subscription_id: str) -> list[dict[str, Any]]:
    """The subscription's delivery rows once the first has ended `failed` (or after 20 s)."""
    deadline = time.monotonic() + 20
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = delivery_rows(database_url, subscription_id)
        if rows and rows[0]["state"] == "failed":
            break
        time.sleep(0.2)
    return rows


def test_a_dead_receiver_ends_failed_after_the_schedule(stack: Stack, partner: RestPartner) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    subscription = subscribe(partner, dead, ["customer.updated"])
    assert partner.create_customer().status_code == 201
    rows = rows_once_failed(stack.database_url, subscription["id"])
    assert len(rows) == 1 and rows[0]["state"] == "failed", rows
    assert rows[0]["attempts"] >= 3  # 0.2 s base, 3 s max age: about five tries
    assert rows[0]["last_status"] is None and rows[0]["last_error"] == "could not connect"


def test_a_callback_host_that_does_not_resolve_is_retried_then_failed(
    stack: Stack, partner: RestPartner
) -> None:
    """A failed attempt like any other (issue 13 row 5): recorded, backed off, `failed` at
    max age; not an exception that leaves the row `delivering` until its lease runs out."""
    subscription = subscribe(partner, "http://hooks.nowhere.invalid/hooks", ["customer.updated"])
    assert partner.create_customer().status_code == 201
    rows = rows_once_failed(stack.database_url, subscription["id"])
    assert len(rows) == 1 and rows[0]["state"] == "failed", rows
    assert rows[0]["attempts"] >= 3  # 0.2 s base, 3 s max age: about five tries
    assert rows[0]["last_status"] is None
    assert rows[0]["last_error"] == "could not resolve callback host"


def test_a_stuck_receiver_delays_neither_the_api_nor_other_receivers(
    stack: Stack, partner: RestPartner
) -> None:
    with (
        running_receiver(Receiver(delay=5.0)) as slow,
        running_receiver() as fast,
    ):
        subscribe(partner, slow, ["customer.updated"])
        subscribe(partner, fast, ["customer.updated"])
        first = partner.create_customer()
        assert first.status_code == 201
        # The slow receiver now holds deliveries; it answers nothing for 5 s.
        slow.wait_for(lambda r: r.received >= 1, timeout=5)
        started = time.monotonic()
        for _ in range(6):
            assert partner.create_customer().status_code == 201
        assert partner.call("GET", "/customers").status_code == 200
        api_seconds = time.monotonic() - started
        wanted = [e["eventId"] for e in partner_events(partner)]
        assert len(wanted) == 7
        fast.wait_for(lambda r: r.has_events(wanted), timeout=4)
        fast_seconds = time.monotonic() - started
        fast_done = max(a.at for a in fast.attempts)
        assert all(a.at > fast_done for a in slow.attempts), "all while the slow one was stuck"
    assert api_seconds < 3.0, api_seconds
    assert fast_seconds < 4.5, fast_seconds
    assert all(a.verified for a in fast.attempts)
