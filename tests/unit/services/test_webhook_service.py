"""Webhook subscription rules (services/webhooks.py) over an in-memory store."""

from __future__ import annotations

import uuid

import pytest

from server.domain.errors import InvalidField
from server.domain.events import EventType
from server.domain.webhooks import WebhookLimitReached, WebhookNotFound
from server.services.webhooks import WebhookService
from tests.fakes import FixedClock
from tests.fakes.webhooks import FakeWebhookSubscriptions

URL = "https://hooks.example.com/in"


def service(*, production: bool = False, limit: int = 3) -> WebhookService:
    return WebhookService(
        store=FakeWebhookSubscriptions(),
        clock=FixedClock(),
        production=production,
        max_subscriptions=limit,
    )


async def test_a_new_subscription_gets_a_fresh_secret_shown_once() -> None:
    webhooks = service()
    partner = uuid.uuid4()
    first = await webhooks.put(
        partner_id=partner, subscription_id="", callback_url=URL, types=["customer.updated"]
    )
    second = await webhooks.put(
        partner_id=partner, subscription_id="", callback_url=URL, types=["card.updated"]
    )
    assert first.created and second.created
    assert first.subscription.secret.startswith("whsec_")
    assert first.subscription.secret != second.subscription.secret
    assert first.subscription.types == (EventType.CUSTOMER_UPDATED,)


async def test_a_partner_at_its_limit_is_refused_a_new_one_and_may_add_after_a_delete() -> None:
    webhooks = service(limit=2)
    partner = uuid.uuid4()
    made = [
        await webhooks.put(
            partner_id=partner, subscription_id="", callback_url=URL, types=["customer.updated"]
        )
        for _ in range(2)
    ]
    with pytest.raises(WebhookLimitReached) as refused:
        await webhooks.put(
            partner_id=partner, subscription_id="", callback_url=URL, types=["customer.updated"]
        )
    assert refused.value.metadata == {"limit": "2"}
    # Another partner has its own count; an update is not a new subscription.
    await webhooks.put(
        partner_id=uuid.uuid4(), subscription_id="", callback_url=URL, types=["card.updated"]
    )
    await webhooks.put(
        partner_id=partner,
        subscription_id=str(made[0].subscription.id),
        callback_url=URL,
        types=["card.updated"],
    )
    await webhooks.delete(partner_id=partner, subscription_id=str(made[1].subscription.id))
    again = await webhooks.put(
        partner_id=partner, subscription_id="", callback_url=URL, types=["customer.updated"]
    )
    assert again.created


async def test_an_update_replaces_url_and_types_and_keeps_the_secret() -> None:
    webhooks = service()
    partner = uuid.uuid4()
    made = await webhooks.put(
        partner_id=partner, subscription_id="", callback_url=URL, types=["customer.updated"]
    )
    updated = await webhooks.put(
        partner_id=partner,
        subscription_id=str(made.subscription.id),
        callback_url="https://other.example.com/hook",
        types=["account.updated", "card.updated"],
    )
    assert not updated.created
    assert updated.subscription.id == made.subscription.id
    assert updated.subscription.secret == made.subscription.secret
    assert updated.subscription.callback_url == "https://other.example.com/hook"
    assert updated.subscription.types == (EventType.ACCOUNT_UPDATED, EventType.CARD_UPDATED)
    shown = await webhooks.get(partner_id=partner, subscription_id=str(made.subscription.id))
    assert shown == updated.subscription


@pytest.mark.parametrize("subscription_id", ["not-a-uuid", str(uuid.uuid4())])
async def test_an_unknown_or_malformed_id_is_not_found_for_every_operation(
    subscription_id: str,
) -> None:
    webhooks = service()
    partner = uuid.uuid4()
    with pytest.raises(WebhookNotFound):
        await webhooks.get(partner_id=partner, subscription_id=subscription_id)
    with pytest.raises(WebhookNotFound):
        await webhooks.delete(partner_id=partner, subscription_id=subscription_id)
    with pytest.raises(WebhookNotFound):
        await webhooks.put(
            partner_id=partner,
            subscription_id=subscription_id,
            callback_url=URL,
            types=["customer.updated"],
        )


async def test_another_partners_subscription_is_not_found() -> None:
    webhooks = service()
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    made = await webhooks.put(
        partner_id=owner, subscription_id="", callback_url=URL, types=["customer.updated"]
    )
    the_id = str(made.subscription.id)
    with pytest.raises(WebhookNotFound):
        await webhooks.get(partner_id=stranger, subscription_id=the_id)
    with pytest.raises(WebhookNotFound):
        await webhooks.delete(partner_id=stranger, subscription_id=the_id)
    assert await webhooks.list(partner_id=stranger) == []
    assert [s.id for s in await webhooks.list(partner_id=owner)] == [made.subscription.id]


async def test_a_deleted_subscription_is_gone() -> None:
    webhooks = service()
    partner = uuid.uuid4()
    made = await webhooks.put(
        partner_id=partner, subscription_id="", callback_url=URL, types=["customer.updated"]
    )
    await webhooks.delete(partner_id=partner, subscription_id=str(made.subscription.id))
    assert await webhooks.list(partner_id=partner) == []
    with pytest.raises(WebhookNotFound):
        await webhooks.delete(partner_id=partner, subscription_id=str(made.subscription.id))


async def test_internal_callback_targets_are_refused_in_production_only() -> None:
    partner = uuid.uuid4()
    local = "http://127.0.0.1:9000/hook"
    made = await service(production=False).put(
        partner_id=partner, subscription_id="", callback_url=local, types=["customer.updated"]
    )
    assert made.subscription.callback_url == local
    with pytest.raises(InvalidField) as refused:
        await service(production=True).put(
            partner_id=partner, subscription_id="", callback_url=local, types=["customer.updated"]
        )
    assert refused.value.field == "callbackUrl"


@pytest.mark.parametrize("types", [[], ["customer.deleted"], ["card.updated", "card.updated"]])
async def test_types_must_be_known_and_listed_once(types: list[str]) -> None:
    webhooks = service()
    with pytest.raises(InvalidField) as refused:
        await webhooks.put(
            partner_id=uuid.uuid4(), subscription_id="", callback_url=URL, types=types
        )
    assert refused.value.field == "types"
    assert await webhooks.list(partner_id=uuid.uuid4()) == []
