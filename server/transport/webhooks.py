"""WebhookService over gRPC: translate, call one use case, translate."""

from __future__ import annotations

import grpc
from google.protobuf import empty_pb2

from customers.v1 import webhooks_pb2 as pb
from customers.v1 import webhooks_pb2_grpc
from server.domain.webhooks import WebhookSubscription
from server.rpc.context import partner
from server.rpc.http_status import answer_with
from server.services.webhooks import WebhookService
from server.transport.convert import timestamp


def _webhook(subscription: WebhookSubscription, *, with_secret: bool = False) -> pb.Webhook:
    message = pb.Webhook(
        id=str(subscription.id),
        callback_url=subscription.callback_url,
        types=[t.value for t in subscription.types],
        created_at=timestamp(subscription.created_at),
        updated_at=timestamp(subscription.updated_at),
    )
    if with_secret:  # the create answer only: the partner's one chance to store it
        message.secret = subscription.secret
    return message


class WebhookServicer(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(self, service: WebhookService) -> None:
        self._service = service

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
        return _webhook(saved.subscription, with_secret=saved.created)

    async def ListWebhooks(
        self, request: pb.ListWebhooksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWebhooksResponse:
        found = await self._service.list(partner_id=partner())
        return pb.ListWebhooksResponse(webhooks=[_webhook(s) for s in found])

    async def GetWebhook(
        self, request: pb.GetWebhookRequest, context: grpc.aio.ServicerContext
    ) -> pb.Webhook:
        return _webhook(await self._service.get(partner_id=partner(), subscription_id=request.id))

    async def DeleteWebhook(
        self, request: pb.DeleteWebhookRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self._service.delete(partner_id=partner(), subscription_id=request.id)
        await answer_with(context, 204)
        return empty_pb2.Empty()
