"""The per-receiver concurrency limit holds across replicas (issue 13): two server
processes on one PostgreSQL database behind one Envoy, and one slow receiver on loopback
that records the most requests it was ever answering at once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from server.events.webhooks import PER_RECEIVER_LIMIT
from tests.e2e.test_replicas import Replicas, running_replicas
from tests.e2e.test_webhooks import partner_events, subscribe
from tests.helpers.receivers import Receiver, running_receiver
from tests.helpers.rest import RestPartner


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    with running_replicas(tmp_path_factory.mktemp("webhook-replicas")) as running:
        yield running


def test_one_slow_receiver_gets_at_most_the_limit_at_once_from_two_replicas(
    replicas: Replicas,
) -> None:
    with (
        httpx.Client(base_url=replicas.base_url, timeout=30) as http,
        running_receiver(Receiver(delay=0.5, keep_alive=True)) as receiver,
    ):
        partner = RestPartner(http, replicas.new_partner())
        # Several subscriptions to the one receiver: the limit is per receiver (host:port),
        # not per subscription.
        secrets = [subscribe(partner, receiver, ["customer.updated"])["secret"] for _ in "ab"]
        receiver.secret, receiver.also_secrets = secrets[0], secrets[1:]
        for _ in range(12):
            assert partner.create_customer().status_code == 201
        events = {e["eventId"] for e in partner_events(partner)}

        def all_sent(r: Receiver) -> bool:
            return sum(1 for a in r.attempts if a.answered == 200) >= 2 * len(events)

        receiver.wait_for(all_sent, timeout=60)
    assert receiver.max_concurrent <= PER_RECEIVER_LIMIT, receiver.max_concurrent
    assert {a.headers["webhook-id"] for a in receiver.attempts} == events
    assert all(a.verified for a in receiver.attempts)
