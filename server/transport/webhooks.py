"""WebhookService over gRPC: translate, call one use case, translate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import empty_pb2

from customers.v1 import webhooks_pb2 as pb
from customers.v1 import webhooks_pb2_grpc
from server.domain.deliveries import Delivery
from server.domain.webhooks import WebhookSubscription
from server.rpc.context import partner
from server.rpc.http_status import answer_with
from server.services.webhook_operations import WebhookOperations
from server.services.webhooks import WebhookService
from server.transport.convert import as_gateway_prints, timestamp


def webhook(subscription: WebhookSubscription, *, with_secret: bool = False) -> pb.Webhook:
    message = pb.Webhook(
        id=str(subscription.id),
        callback_url=subscription.callback_url,
        types=[t.value for t in subscription.types],
        created_at=timestamp(subscription.created_at),
        updated_at=timestamp(subscription.updated_at),
        status=pb.Webhook.enabled if subscription.enabled else pb.Webhook.disabled,
    )
    if subscription.disabled_at is not None:
        message.disabled_at.CopyFrom(timestamp(subscription.disabled_at))
    until = subscription.previous_secret_until
    if subscription.previous_secret and until is not None and until > datetime.now(UTC):
        message.previous_secret_expires_at.CopyFrom(timestamp(until))
    if with_secret:  # the create and rotate answers only: the partner's chance to store it
        message.secret = subscription.secret
    return message


def webhook_payload(subscription: WebhookSubscription) -> dict[str, Any]:
    """A subscription as GET /webhooks/{id} prints it: the webhook.disabled event's payload."""
    return as_gateway_prints(webhook(subscription))


def delivery(entry: Delivery) -> pb.WebhookDelivery:
    message = pb.WebhookDelivery(
        id=str(entry.id),
        event_id=str(entry.event_id),
        webhook_type=entry.event_type or "",
        seq=entry.seq or 0,
        status=entry.state.value,  # the enum's value names are the states
        attempts=entry.attempts,
        last_error=entry.last_error or "",
        created_at=timestamp(entry.created_at),
    )
    if entry.last_status is not None:
        message.last_status_code = entry.last_status
    if entry.next_attempt_at is not None:
        message.next_attempt_at.CopyFrom(timestamp(entry.next_attempt_at))
    return message


class WebhookServicer(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(self, service: WebhookService, operations: WebhookOperations) -> None:
        self._service = service
        self._operations = operations

    async def PutWebhook(
        self, request: pb.PutWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.Webhook:
        saved = await self._service.put(
            partner_id=partner(),
            subscription_id=request.id,
            callback_url=request.callback_url,
            types=list(request.types),
        )
        if saved.created:
            await answer_with(context, 201)
        return webhook(saved.subscription, with_secret=saved.created)

    async def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhooksResponse:
        found = await self._service.list(partner_id=partner())
        return pb.ListWebhooksResponse(webhooks=[webhook(s) for s in found])

    async def GetWebhook(
        self, request: pb.GetWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.Webhook:
        return webhook(await self._service.get(partner_id=partner(), subscription_id=request.id))

    async def DeleteWebhook(
        self, request: pb.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self._service.delete(partner_id=partner(), subscription_id=request.id)
        await answer_with(context, 204)
        return empty_pb2.Empty()

    async def RotateWebhookSecret(
        self, request: pb.RotateWebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> pb.Webhook:
        rotated = await self._operations.rotate(
            partner_id=partner(),
            subscription_id=request.id,
            overlap_seconds=(
                request.overlap_seconds if request.HasField("overlap_seconds") else None
            ),
        )
        return webhook(rotated, with_secret=True)

    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhookDeliveriesResponse:
        page = await self._operations.deliveries(
            partner_id=partner(),
            subscription_id=request.id,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[delivery(d) for d in page.items], next_page_token=page.next_token
        )

    async def RedeliverWebhookDelivery(
        self, request: pb.RedeliverWebhookDeliveryRequest, context: grpc.aio.ServicerContext
    ) -> pb.WebhookDelivery:
        redelivered = await self._operations.redeliver(
            partner_id=partner(), subscription_id=request.id, delivery_id=request.delivery_id
        )
        return delivery(redelivered)

    async def ReplayWebhookEvents(
        self, request: pb.ReplayWebhookEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReplayWebhookEventsResponse:
        replayed = await self._operations.replay(
            partner_id=partner(), subscription_id=request.id, after=request.after_sequence
        )
        return pb.ReplayWebhookEventsResponse(
            replayed=replayed.events, through_sequence=replayed.through_seq
        )

    async def EnableWebhook(
        self, request: pb.EnableWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.Webhook:
        return webhook(
            await self._operations.enable(partner_id=partner(), subscription_id=request.id)
        )
