"""Change events over REST through Envoy: SSE stream of /customers:watch and GET /events."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from client.signing import SigningAuth
from tests.e2e.conftest import Stack, error_reason
from tests.helpers.rest import RestPartner


def read_sse(stack: Stack, partner: RestPartner, path: str, count: int) -> list[dict[str, Any]]:
    """The first `count` non-heartbeat `data:` events of a signed SSE request."""
    got: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {partner.token}"}
    with (
        httpx.Client(base_url=stack.base_url, timeout=httpx.Timeout(20, read=20)) as client,
        client.stream("GET", path, headers=headers, auth=SigningAuth(partner.key)) as answer,
    ):
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[len("data:") :])
            if message.get("heartbeat"):
                continue
            got.append(message)
            if len(got) == count:
                break
    return got


def test_the_sse_stream_carries_customer_changes_as_they_happen(
    stack: Stack, partner: RestPartner
) -> None:
    customer = partner.active_customer()
    catch_up = read_sse(stack, partner, "/customers:watch?after=0", 3)
    assert [m["customer"]["status"] for m in catch_up][-1] == "active"
    assert all(m["webhookType"] == "customer.updated" and m["eventId"] for m in catch_up)
    last = int(catch_up[-1]["seq"])

    live: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: live.extend(read_sse(stack, partner, f"/v1/customers:watch?after={last}", 2))
    )
    reader.start()
    partner.call("PATCH", f"/customers/{customer['id']}/deactivate")
    partner.call("PATCH", f"/customers/{customer['id']}/activate")
    reader.join(30)
    assert [int(m["seq"]) for m in live] == [last + 1, last + 2]
    assert [m["customer"]["status"] for m in live] == ["inactive", "active"]


@pytest.mark.parametrize("query", ["", "?after=0"])
def test_an_idle_watch_answers_200_and_a_heartbeat_at_once(
    stack: Stack, partner: RestPartner, query: str
) -> None:
    """No backlog (a new partner): the headers and a first heartbeat come at once, not with
    the first periodic heartbeat 15 s later, so a client with a short timeout can open it."""
    headers = {"Authorization": f"Bearer {partner.token}"}
    started = time.monotonic()
    with (
        httpx.Client(base_url=stack.base_url, timeout=2.0) as client,
        client.stream(
            "GET", f"/customers:watch{query}", headers=headers, auth=SigningAuth(partner.key)
        ) as answer,
    ):
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in answer.iter_lines() if line.startswith("data:"))
    assert json.loads(first[len("data:") :]) == {"heartbeat": True}
    assert time.monotonic() - started < 2.0


def test_a_bad_watch_request_is_a_real_http_error(stack: Stack, partner: RestPartner) -> None:
    answer = partner.call("GET", "/customers:watch", params={"after": "-1"})
    assert answer.status_code == 400
    assert error_reason(answer) == "INVALID_FIELD"
    unknown = partner.call(
        "GET", "/customers:watch", params={"customerId": "00000000-0000-0000-0000-000000000000"}
    )
    assert unknown.status_code == 404


def test_list_events_answers_every_change_with_its_entity(partner: RestPartner) -> None:
    customer = partner.active_customer()
    account = partner.call(
        "POST",
        f"/customers/{customer['id']}/accounts",
        json={"type": "card_account", "currencies": ["EUR"]},
    ).json()
    card = partner.call("POST", f"/accounts/{account['id']}/cards", json={"type": "virtual"}).json()
    partner.call("PATCH", f"/customers/{customer['id']}/deactivate")
    listed = partner.call("GET", "/events", params={"after": 0, "pageSize": 100}).json()
    events = listed["events"]
    assert listed["nextPageToken"] == ""
    assert [int(e["seq"]) for e in events] == list(range(1, len(events) + 1))
    kinds = [e["webhookType"] for e in events]
    assert kinds.count("account.updated") == 2 and kinds.count("card.updated") == 2
    assert events[-1]["webhookType"] in {"customer.updated", "account.updated", "card.updated"}
    final = {e["webhookType"]: e for e in events}
    assert final["card.updated"]["card"]["id"] == card["id"]
    assert final["card.updated"]["card"]["status"] == "inactive"
    assert final["account.updated"]["account"]["status"] == "inactive"
    customers_only = partner.call("GET", "/events", params={"types": "customer.updated"}).json()
    assert {e["webhookType"] for e in customers_only["events"]} == {"customer.updated"}
    bad = partner.call("GET", "/events", params={"types": "nope"})
    assert bad.status_code == 400 and error_reason(bad) == "INVALID_FIELD"


def test_a_rejected_change_publishes_nothing(partner: RestPartner) -> None:
    created = partner.create_customer().json()
    before = partner.call("GET", "/events").json()["events"]
    refused = partner.call("PATCH", f"/customers/{created['id']}/activate")
    assert refused.status_code == 409
    duplicate = partner.create_customer(created["chainId"], "another")
    assert duplicate.status_code == 409
    assert partner.call("GET", "/events").json()["events"] == before


def test_every_event_shows_its_entity_exactly_as_a_get_does(partner: RestPartner) -> None:
    """One API shape per entity: the last event of each entity is what a GET shows now."""
    customer = partner.active_customer()
    account = partner.call(
        "POST",
        f"/customers/{customer['id']}/accounts",
        json={"type": "card_account", "currencies": ["EUR", "USD"]},
    ).json()
    card = partner.call("POST", f"/accounts/{account['id']}/cards", json={"type": "virtual"}).json()
    partner.call("PATCH", f"/customers/{customer['id']}/deactivate")
    events = partner.call("GET", "/events", params={"after": 0, "pageSize": 100}).json()["events"]
    last = {
        (e["webhookType"], next(iter(set(e) & {"customer", "account", "card"}))): e for e in events
    }
    accounts = partner.call("GET", f"/customers/{customer['id']}/accounts").json()["accounts"]
    cards = partner.call("GET", f"/accounts/{account['id']}/cards").json()["cards"]
    shown = {
        "customer": partner.call("GET", f"/customers/{customer['id']}").json(),
        "account": next(a for a in accounts if a["id"] == account["id"]),
        "card": next(c for c in cards if c["id"] == card["id"]),
    }
    for (kind, field), event in last.items():
        assert kind == f"{field}.updated"
        assert event[field] == shown[field], field
    assert {field for _, field in last} == {"customer", "account", "card"}
