"""Webhook operations partners expect (issue 13), through the real Envoy and the real server
to real receivers on loopback: the delivery log, redelivery, replay and secret rotation.
(Disabling a failing endpoint: test_webhook_disable.py; the per-receiver limit across
replicas: test_webhook_replicas.py.)"""

from __future__ import annotations

import time
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from client.idempotency import new_key
from tests.e2e.conftest import Stack, error_reason
from tests.e2e.test_webhooks import partner_events, subscribe
from tests.helpers.openapi import check
from tests.helpers.processes import free_port
from tests.helpers.receivers import Receiver, running_receiver
from tests.helpers.rest import RestPartner

DELIVERY_FIELDS = {
    "id",
    "eventId",
    "webhookType",
    "seq",
    "status",
    "attempts",
    "lastError",
    "createdAt",
}


def deliveries(partner: RestPartner, webhook_id: str, **params: Any) -> dict[str, Any]:
    answer = partner.call("GET", f"/webhooks/{webhook_id}/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def log_once(
    partner: RestPartner, webhook_id: str, done: Any, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """The delivery log once `done(entries)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        entries = list(deliveries(partner, webhook_id)["deliveries"])
        if done(entries):
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery log never settled: {entries}")
        time.sleep(0.1)


def all_delivered(count: int) -> Any:
    return lambda entries: (
        len(entries) == count and all(e["status"] == "delivered" for e in entries)
    )


# -- the delivery log ------------------------------------------------------------------------


def test_the_delivery_log_shows_status_attempts_and_the_last_answer_but_no_body(
    partner: RestPartner,
) -> None:
    with running_receiver(Receiver(statuses=[500])) as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        assert partner.create_customer().status_code == 201
        receiver.wait_for(lambda r: len(r.deliveries) == 1)
        [entry] = log_once(partner, hook["id"], all_delivered(1))
    [event] = partner_events(partner)
    assert set(entry) == DELIVERY_FIELDS | {"lastStatusCode"}
    assert entry["eventId"] == event["eventId"]
    assert entry["webhookType"] == "customer.updated"
    assert entry["seq"] == event["seq"]
    assert entry["attempts"] == 2  # the 500, then the 200
    assert entry["lastStatusCode"] == 200 and entry["lastError"] == ""
    assert entry["id"].isdigit()


def test_a_failing_delivery_shows_its_error_class_and_next_attempt(
    partner: RestPartner,
) -> None:
    hook = subscribe(partner, f"http://127.0.0.1:{free_port()}/dead", ["customer.updated"])
    assert partner.create_customer().status_code == 201
    [entry] = log_once(partner, hook["id"], lambda e: len(e) == 1 and e[0]["lastError"] != "")
    if entry["status"] == "pending":  # retried until 3 s after the event (test schedule)
        assert "nextAttemptAt" in entry
    assert entry["lastError"] == "could not connect"
    assert "lastStatusCode" not in entry  # nothing answered


def test_the_delivery_log_pages_newest_first(partner: RestPartner) -> None:
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        for _ in range(3):
            assert partner.create_customer().status_code == 201
        log_once(partner, hook["id"], all_delivered(3))
    seen: list[dict[str, Any]] = []
    token = ""
    while True:
        page = deliveries(partner, hook["id"], pageSize=2, pageToken=token)
        seen.extend(page["deliveries"])
        token = page["nextPageToken"]
        if not token:
            break
    assert [int(e["id"]) for e in seen] == sorted((int(e["id"]) for e in seen), reverse=True)
    assert {e["eventId"] for e in seen} == {e["eventId"] for e in partner_events(partner)}


def test_the_delivery_log_refuses_bad_input(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    hook = subscribe(partner, "https://hooks.example.com/log", ["customer.updated"])
    theirs = other_partner.call("GET", f"/webhooks/{hook['id']}/deliveries")
    assert theirs.status_code == 404 and error_reason(theirs) == "WEBHOOK_NOT_FOUND"
    unknown = partner.call("GET", "/webhooks/not-a-uuid/deliveries")
    assert unknown.status_code == 404 and error_reason(unknown) == "WEBHOOK_NOT_FOUND"
    for params, field in [({"pageSize": 501}, "pageSize"), ({"pageToken": "nope"}, "pageToken")]:
        answer = partner.call("GET", f"/webhooks/{hook['id']}/deliveries", params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["details"][0]["metadata"]["field"] == field


# -- redelivery ------------------------------------------------------------------------------


def test_a_delivery_is_redelivered_once_per_idempotency_key(partner: RestPartner) -> None:
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        assert partner.create_customer().status_code == 201
        receiver.wait_for(lambda r: len(r.attempts) == 1)
        [entry] = log_once(partner, hook["id"], all_delivered(1))
        path = f"/webhooks/{hook['id']}/deliveries/{entry['id']}/redeliver"
        key = new_key()
        first = partner.call("POST", path, headers={"Idempotency-Key": key})
        assert first.status_code == 200, first.text
        assert first.json()["id"] == entry["id"] and first.json()["status"] == "pending"
        again = partner.call("POST", path, headers={"Idempotency-Key": key})
        assert again.status_code == 200 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        receiver.wait_for(lambda r: len(r.attempts) == 2)
        [after] = log_once(
            partner, hook["id"], lambda e: e[0]["status"] == "delivered" and e[0]["attempts"] == 2
        )
        time.sleep(0.5)  # a second redelivery would have arrived by now
    assert len(receiver.attempts) == 2, "the replayed request did not redeliver again"
    one, two = receiver.attempts
    assert one.verified and two.verified
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == entry["eventId"]
    assert one.body == two.body
    assert after["id"] == entry["id"]


def test_redelivery_refuses_unknown_and_foreign_deliveries(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        other_hook = subscribe(partner, "https://hooks.example.com/other", ["card.updated"])
        assert partner.create_customer().status_code == 201
        [entry] = log_once(partner, hook["id"], all_delivered(1))
        attempts = len(receiver.attempts)
        cases = [
            (partner, f"/webhooks/{hook['id']}/deliveries/999999999999/redeliver", "DELIVERY"),
            (partner, f"/webhooks/{hook['id']}/deliveries/abc/redeliver", "DELIVERY"),
            # A delivery of another subscription, named under this one.
            (partner, f"/webhooks/{other_hook['id']}/deliveries/{entry['id']}/redeliver", "D"),
            (other_partner, f"/webhooks/{hook['id']}/deliveries/{entry['id']}/redeliver", "W"),
        ]
        for caller, path, kind in cases:
            answer = caller.call("POST", path)
            assert answer.status_code == 404, (path, answer.text)
            wanted = "WEBHOOK_NOT_FOUND" if kind == "W" else "WEBHOOK_DELIVERY_NOT_FOUND"
            assert error_reason(answer) == wanted, path
        time.sleep(0.5)
        [unchanged] = deliveries(partner, hook["id"])["deliveries"]
    assert unchanged == entry
    assert len(receiver.attempts) == attempts


# -- replay ----------------------------------------------------------------------------------


def test_replay_sends_every_event_after_the_sequence_again(partner: RestPartner) -> None:
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        for _ in range(3):
            assert partner.create_customer().status_code == 201
        log_once(partner, hook["id"], all_delivered(3))
        events = partner_events(partner)
        replayed = partner.call(
            "POST", f"/webhooks/{hook['id']}/replay", json={"afterSequence": events[0]["seq"]}
        )
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == {"replayed": 2, "throughSequence": events[-1]["seq"]}
        receiver.wait_for(lambda r: len(r.attempts) == 5)
        log_once(
            partner,
            hook["id"],
            lambda e: all(x["status"] == "delivered" for x in e) and len(e) == 3,
        )
        time.sleep(0.5)
    by_event: dict[str, int] = {}
    for attempt in receiver.attempts:
        assert attempt.verified
        by_event[attempt.headers["webhook-id"]] = by_event.get(attempt.headers["webhook-id"], 0) + 1
    assert by_event == {
        events[0]["eventId"]: 1,
        events[1]["eventId"]: 2,
        events[2]["eventId"]: 2,
    }


@pytest.mark.parametrize(
    "after", ["-1", "1000000", "not-a-number"], ids=["negative", "past", "text"]
)
def test_replay_refuses_a_sequence_that_does_not_exist(partner: RestPartner, after: str) -> None:
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        assert partner.create_customer().status_code == 201
        log_once(partner, hook["id"], all_delivered(1))
        answer = partner.call(
            "POST", f"/webhooks/{hook['id']}/replay", json={"afterSequence": after}
        )
        assert answer.status_code == 400, answer.text
        time.sleep(0.5)
        assert len(receiver.attempts) == 1
    if after != "not-a-number":  # that one the gateway refuses, naming the JSON problem
        assert error_reason(answer) == "INVALID_FIELD"
        assert answer.json()["details"][0]["metadata"]["field"] == "afterSequence"


def test_replay_to_another_partners_webhook_is_not_found(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    hook = subscribe(partner, "https://hooks.example.com/replay", ["customer.updated"])
    answer = other_partner.call(
        "POST", f"/webhooks/{hook['id']}/replay", json={"afterSequence": "0"}
    )
    assert answer.status_code == 404 and error_reason(answer) == "WEBHOOK_NOT_FOUND"


# -- secret rotation -------------------------------------------------------------------------


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
    partner: RestPartner,
) -> None:
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        old = hook["secret"]
        rotated = partner.call(
            "POST", f"/webhooks/{hook['id']}/secret/rotate", json={"overlapSeconds": 3600}
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new.startswith("whsec_") and new != old
        assert "previousSecretExpiresAt" in rotated.json()
        fetched = partner.call("GET", f"/webhooks/{hook['id']}").json()
        assert "secret" not in fetched and "previousSecretExpiresAt" in fetched
        receiver.secret = new
        assert partner.create_customer().status_code == 201
        receiver.wait_for(lambda r: len(r.deliveries) == 1)
        during = receiver.attempts[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        assert _verifies(old, during.body, during.headers)
        assert _verifies(new, during.body, during.headers)

        # Overlap 0: the previous secret stops signing at once.
        latest = partner.call(
            "POST", f"/webhooks/{hook['id']}/secret/rotate", json={"overlapSeconds": 0}
        )
        assert latest.status_code == 200, latest.text
        newest = latest.json()["secret"]
        assert "previousSecretExpiresAt" not in latest.json()
        receiver.secret = newest
        assert partner.create_customer().status_code == 201
        receiver.wait_for(lambda r: len(r.deliveries) == 2)
        after = receiver.attempts[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert _verifies(newest, after.body, after.headers)
    assert not _verifies(new, after.body, after.headers)
    assert not _verifies(old, after.body, after.headers)


def test_a_replayed_rotation_answers_the_same_secret_and_rotates_once(
    partner: RestPartner,
) -> None:
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        path = f"/webhooks/{hook['id']}/secret/rotate"
        key = new_key()
        first = partner.call(
            "POST", path, json={"overlapSeconds": 0}, headers={"Idempotency-Key": key}
        )
        again = partner.call(
            "POST", path, json={"overlapSeconds": 0}, headers={"Idempotency-Key": key}
        )
        assert first.status_code == again.status_code == 200
        assert first.json()["secret"] == again.json()["secret"]
        reused = partner.call(
            "POST", path, json={"overlapSeconds": 5}, headers={"Idempotency-Key": key}
        )
        assert reused.status_code == 422 and error_reason(reused) == "IDEMPOTENCY_KEY_REUSED"
        receiver.secret = first.json()["secret"]
        assert partner.create_customer().status_code == 201
        receiver.wait_for(lambda r: len(r.deliveries) == 1)
    assert all(a.verified for a in receiver.attempts)


def test_a_refused_rotation_changes_nothing(
    stack: Stack, partner: RestPartner, other_partner: RestPartner
) -> None:
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        path = f"/webhooks/{hook['id']}/secret/rotate"
        for body in ({"overlapSeconds": -1}, {"overlapSeconds": 604801}):
            answer = partner.call("POST", path, json=body)
            assert answer.status_code == 400, answer.text
            assert answer.json()["details"][0]["metadata"]["field"] == "overlapSeconds"
        theirs = other_partner.call("POST", path, json={"overlapSeconds": 0})
        assert theirs.status_code == 404 and error_reason(theirs) == "WEBHOOK_NOT_FOUND"
        assert (
            partner.call("GET", f"/webhooks/{hook['id']}").json()["updatedAt"] == hook["updatedAt"]
        )
        assert partner.create_customer().status_code == 201
        receiver.wait_for(lambda r: len(r.deliveries) == 1)
    [attempt] = receiver.attempts
    assert attempt.verified  # still the original secret, alone
    assert len(attempt.headers["webhook-signature"].split(" ")) == 1


# -- the published contract ------------------------------------------------------------------


def test_the_operations_answer_what_the_document_says(
    partner: RestPartner, other_partner: RestPartner
) -> None:
    """Statuses, bodies (no property the schema does not name) and error reasons of every
    new operation, against gen/openapi.json."""
    with running_receiver() as receiver:
        hook = subscribe(partner, receiver, ["customer.updated"])
        base = f"/webhooks/{hook['id']}"
        assert partner.create_customer().status_code == 201
        [entry] = log_once(partner, hook["id"], all_delivered(1))
        calls = [
            ("GET", "/webhooks/{id}/deliveries", partner.call("GET", f"{base}/deliveries")),
            (
                "GET",
                "/webhooks/{id}/deliveries",
                partner.call("GET", f"{base}/deliveries", params={"pageToken": "x"}),
            ),
            (
                "POST",
                "/webhooks/{id}/deliveries/{deliveryId}/redeliver",
                partner.call("POST", f"{base}/deliveries/{entry['id']}/redeliver"),
            ),
            (
                "POST",
                "/webhooks/{id}/deliveries/{deliveryId}/redeliver",
                partner.call("POST", f"{base}/deliveries/1x/redeliver"),
            ),
            (
                "POST",
                "/webhooks/{id}/replay",
                partner.call("POST", f"{base}/replay", json={"afterSequence": "0"}),
            ),
            (
                "POST",
                "/webhooks/{id}/replay",
                partner.call("POST", f"{base}/replay", json={"afterSequence": "99999"}),
            ),
            (
                "POST",
                "/webhooks/{id}/secret/rotate",
                partner.call("POST", f"{base}/secret/rotate", json={"overlapSeconds": 60}),
            ),
            (
                "POST",
                "/webhooks/{id}/secret/rotate",
                other_partner.call("POST", f"{base}/secret/rotate", json={}),
            ),
            ("PATCH", "/webhooks/{id}/enable", partner.call("PATCH", f"{base}/enable")),
            ("GET", "/webhooks/{id}", partner.call("GET", base)),
        ]
        statuses = [answer.status_code for _, _, answer in calls]
        assert statuses == [200, 400, 200, 404, 200, 400, 200, 404, 200, 200]
        for verb, template, answer in calls:
            check(verb, template, answer)
