"""An endpoint that keeps failing is disabled, and enabling it resumes delivery where it
stopped (issue 13), through the real Envoy to real receivers on loopback.

Its own stack: CUSTOMERS_WEBHOOK_DISABLE_AFTER_SECONDS=1 (default 3 days), with the test
schedule's 0.2 s first retry and 3 s max age, so an endpoint is disabled after its
attempts failed for a second, well before a delivery's retries run out.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, error_reason, running_stack
from tests.e2e.test_webhook_operations import deliveries, log_once
from tests.e2e.test_webhooks import subscribe
from tests.helpers.receivers import Receiver, running_receiver
from tests.helpers.rest import RestPartner


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def disabling_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp(f"disable-{request.param}")
    with running_stack(
        request.param, folder, CUSTOMERS_WEBHOOK_DISABLE_AFTER_SECONDS="1"
    ) as running:
        yield running


@pytest.fixture
def client(disabling_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=disabling_stack.base_url, timeout=10) as http:
        yield http


def _partner(stack: Stack, http: httpx.Client) -> RestPartner:
    return RestPartner(http, stack.new_partner())


def _webhook_once(partner: RestPartner, webhook_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        found = partner.call("GET", f"/webhooks/{webhook_id}").json()
        if found["status"] == status:
            return dict(found)
        if time.monotonic() > deadline:
            raise AssertionError(f"webhook never became {status}: {found}")
        time.sleep(0.1)


def test_a_failing_endpoint_is_disabled_and_resumes_where_it_stopped_when_enabled(
    disabling_stack: Stack, client: httpx.Client
) -> None:
    partner = _partner(disabling_stack, client)
    failing = Receiver(statuses=[500] * 1000)
    with running_receiver(failing) as receiver, running_receiver() as notices:
        hook = subscribe(partner, receiver, ["customer.updated"])
        assert hook["status"] == "enabled"
        watcher = subscribe(partner, notices, ["webhook.disabled"])
        assert partner.create_customer().status_code == 201

        disabled = _webhook_once(partner, hook["id"], "disabled")
        assert "disabledAt" in disabled
        # The notice: in GET /events, and sent to the subscription that asked for it.
        listed = partner.call("GET", "/events", params={"types": "webhook.disabled"})
        assert listed.status_code == 200, listed.text
        [notice] = listed.json()["events"]
        assert notice["webhookType"] == "webhook.disabled"
        assert notice["webhook"]["id"] == hook["id"]
        assert notice["webhook"]["status"] == "disabled"
        notices.wait_for(lambda r: r.has_events([notice["eventId"]]))
        assert notices.deliveries[notice["eventId"]]["id"] == hook["id"]

        # While disabled nothing is tried; what happens meanwhile waits.
        tried = len(receiver.attempts)
        for _ in range(2):
            assert partner.create_customer().status_code == 201
        waiting = log_once(
            partner,
            hook["id"],
            lambda e: len(e) == 3 and all(x["status"] == "paused" for x in e),
        )
        assert len(receiver.attempts) == tried

        # The endpoint recovers; the partner enables the subscription.
        with receiver._lock:
            receiver.statuses.clear()
        enabled = partner.call("PATCH", f"/webhooks/{hook['id']}/enable")
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["status"] == "enabled" and "disabledAt" not in enabled.json()
        wanted = [e["eventId"] for e in waiting]
        receiver.wait_for(lambda r: r.has_events(wanted))
        log_once(
            partner,
            hook["id"],
            lambda e: len(e) == 3 and all(x["status"] == "delivered" for x in e),
        )
        time.sleep(0.5)  # a duplicate would have arrived by now
        again = partner.call("PATCH", f"/webhooks/{hook['id']}/enable")
        assert again.status_code == 200 and again.json()["status"] == "enabled"
    # Nothing skipped, nothing duplicated: each event answered 2xx exactly once.
    succeeded = Counter(
        a.headers["webhook-id"] for a in receiver.attempts if a.verified and a.answered == 200
    )
    assert succeeded == Counter({event_id: 1 for event_id in wanted})
    # The watcher itself never failed, so it stays enabled.
    assert partner.call("GET", f"/webhooks/{watcher['id']}").json()["status"] == "enabled"


def test_enable_refuses_another_partners_webhook(
    disabling_stack: Stack, client: httpx.Client
) -> None:
    mine, theirs = _partner(disabling_stack, client), _partner(disabling_stack, client)
    hook = subscribe(mine, "https://hooks.example.com/enable", ["customer.updated"])
    for path in (f"/webhooks/{hook['id']}/enable", "/webhooks/not-a-uuid/enable"):
        answer = theirs.call("PATCH", path)
        assert answer.status_code == 404 and error_reason(answer) == "WEBHOOK_NOT_FOUND"
    assert deliveries(mine, hook["id"])["deliveries"] == []
