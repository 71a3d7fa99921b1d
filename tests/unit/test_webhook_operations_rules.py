"""Webhook operations' rules without I/O: secret rotation and its overlap, the signatures a
delivery carries during it, replay bounds, delivery ids, and when an endpoint is disabled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from server.domain.deliveries import (
    DEFAULT_DISABLE_AFTER,
    DEFAULT_OVERLAP,
    DisablePolicy,
    WebhookDeliveryNotFound,
    check_replay_after,
    disabled_notice,
    overlap,
    parse_delivery_id,
    rotated,
    signing_secrets,
)
from server.domain.errors import InvalidField
from server.domain.events import EventType
from server.domain.webhooks import WebhookSubscription, new_secret, parse_types
from server.events.webhooks import signed_request
from server.store.webhooks import Claimed, body

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _subscription(**changes: object) -> WebhookSubscription:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "partner_id": uuid.uuid4(),
        "callback_url": "https://hooks.example.com/",
        "types": (EventType.CUSTOMER_UPDATED,),
        "secret": new_secret(),
        "created_at": NOW - timedelta(days=1),
        "updated_at": NOW - timedelta(days=1),
    }
    values.update(changes)
    return WebhookSubscription(**values)  # type: ignore[arg-type]


def test_overlap_defaults_to_a_day_and_refuses_negative_or_huge_values() -> None:
    assert overlap(None) == DEFAULT_OVERLAP == timedelta(hours=24)
    assert overlap(0) == timedelta(0)
    assert overlap(604800) == timedelta(days=7)
    for bad in (-1, 604801):
        with pytest.raises(InvalidField) as refused:
            overlap(bad)
        assert refused.value.field == "overlapSeconds"


def test_a_rotation_keeps_the_old_secret_for_the_overlap_only() -> None:
    before = _subscription()
    after = rotated(before, secret="whsec_new", now=NOW, keep_old=timedelta(hours=1))
    assert after.secret == "whsec_new" and after.previous_secret == before.secret
    assert after.previous_secret_until == NOW + timedelta(hours=1)
    assert after.updated_at == NOW and after.created_at == before.created_at
    assert signing_secrets(
        after.secret, after.previous_secret, after.previous_secret_until, now=NOW
    ) == ("whsec_new", before.secret)
    later = NOW + timedelta(hours=1)
    assert signing_secrets(
        after.secret, after.previous_secret, after.previous_secret_until, now=later
    ) == ("whsec_new",)
    # Overlap 0 forgets the old one; a rotation during an overlap drops the oldest.
    assert rotated(before, secret="x", now=NOW, keep_old=timedelta(0)).previous_secret is None
    again = rotated(after, secret="whsec_third", now=NOW, keep_old=timedelta(hours=1))
    assert (again.secret, again.previous_secret) == ("whsec_third", "whsec_new")


def test_during_an_overlap_a_delivery_verifies_with_either_secret_and_not_a_third() -> None:
    old, new = new_secret(), new_secret()
    event_id = uuid.uuid4()
    claimed = Claimed(
        delivery_id=1,
        attempt=1,
        event_id=event_id,
        subscription_id=uuid.uuid4(),
        callback_url="https://hooks.example.com/",
        secret=new,
        payload=body("customer.updated", event_id, {"id": "c1"}),
        created_at=datetime.now(UTC),
        previous_secret=old,
        previous_secret_until=datetime.now(UTC) + timedelta(hours=1),
    )
    content, headers = signed_request(claimed, at=datetime.now(UTC))
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (old, new):
        assert Webhook(secret).verify(content, headers)["eventId"] == str(event_id)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(content, headers)
    # Once the overlap is over, only the new secret signs.
    ended = Claimed(**{**claimed.__dict__, "previous_secret_until": datetime.now(UTC)})
    content, headers = signed_request(ended, at=datetime.now(UTC))
    assert len(headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(content, headers)


def test_a_replay_starts_at_zero_or_an_existing_sequence() -> None:
    check_replay_after(0, last_seq=0)
    check_replay_after(7, last_seq=7)
    for after in (-1, 8):
        with pytest.raises(InvalidField) as refused:
            check_replay_after(after, last_seq=7)
        assert refused.value.field == "afterSequence"


@pytest.mark.parametrize(
    "value", ["", "abc", "-1", "1.5", "١٢", "9" * 19, " 1", "2147483648", "999999999999"]
)
def test_delivery_ids_are_short_decimal_strings(value: str) -> None:
    with pytest.raises(WebhookDeliveryNotFound):
        parse_delivery_id(value)


def test_a_delivery_id_parses() -> None:
    assert parse_delivery_id("42") == 42
    assert parse_delivery_id("2147483647") == 2**31 - 1


def test_an_endpoint_is_disabled_once_it_failed_for_the_whole_period() -> None:
    policy = DisablePolicy()
    assert policy.after == DEFAULT_DISABLE_AFTER == timedelta(days=3)
    assert not policy.due(None, NOW)  # not failing
    assert not policy.due(NOW - timedelta(days=3) + timedelta(seconds=1), NOW)
    assert policy.due(NOW - timedelta(days=3), NOW)
    assert DisablePolicy(timedelta(seconds=1)).due(NOW - timedelta(seconds=1), NOW)


def test_the_disabled_notice_is_an_event_with_the_subscription_as_shown() -> None:
    hook = _subscription(disabled_at=NOW)
    notice = disabled_notice(hook, lambda s: {"id": str(s.id), "status": "disabled"})
    assert notice.type is EventType.WEBHOOK_DISABLED
    assert notice.entity_id == hook.id and notice.partner_id == hook.partner_id
    assert notice.payload == {"id": str(hook.id), "status": "disabled"}
    assert notice.occurred_at == NOW
    assert not hook.enabled


def test_partners_may_subscribe_to_the_disabled_notice() -> None:
    assert parse_types(["webhook.disabled"]) == (EventType.WEBHOOK_DISABLED,)
