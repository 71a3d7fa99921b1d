"""The webhook operations over native gRPC (signed, with Idempotency-Keys in metadata):
the same use cases as REST, with gRPC status codes."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from customers.v1 import webhooks_pb2 as pb
from customers.v1 import webhooks_pb2_grpc
from server.app import RunningServer
from tests.integration.conftest import GrpcPartner, signed_channel
from tests.integration.test_grpc_customers import reason_of


def _stub(server: RunningServer, partner: GrpcPartner) -> webhooks_pb2_grpc.WebhookServiceStub:
    assert partner.key is not None
    return webhooks_pb2_grpc.WebhookServiceStub(signed_channel(server, partner.key))


async def test_the_operations_over_native_grpc(
    server: RunningServer, partner: GrpcPartner, other_partner: GrpcPartner
) -> None:
    stub = _stub(server, partner)
    meta = partner.metadata
    hook = await stub.PutWebhook(
        pb.PutWebhookRequest(callback_url="https://hooks.example.com/", types=["card.updated"]),
        metadata=meta,
    )
    assert hook.status == pb.Webhook.enabled
    rotated = await stub.RotateWebhookSecret(
        pb.RotateWebhookSecretRequest(id=hook.id), metadata=meta
    )
    assert rotated.secret.startswith("whsec_") and rotated.secret != hook.secret
    overlap = rotated.previous_secret_expires_at.ToDatetime() - rotated.updated_at.ToDatetime()
    assert abs(overlap - timedelta(hours=24)) < timedelta(seconds=5)  # the default overlap
    listed = await stub.ListWebhookDeliveries(
        pb.ListWebhookDeliveriesRequest(id=hook.id), metadata=meta
    )
    assert list(listed.deliveries) == [] and listed.next_page_token == ""
    replayed = await stub.ReplayWebhookEvents(
        pb.ReplayWebhookEventsRequest(id=hook.id, after_sequence=0), metadata=meta
    )
    assert replayed.replayed == 0
    enabled = await stub.EnableWebhook(pb.EnableWebhookRequest(id=hook.id), metadata=meta)
    assert enabled.status == pb.Webhook.enabled

    refused = [
        (
            stub.ReplayWebhookEvents(
                pb.ReplayWebhookEventsRequest(id=hook.id, after_sequence=10**6), metadata=meta
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
        ),
        (
            stub.RotateWebhookSecret(
                pb.RotateWebhookSecretRequest(id=hook.id, overlap_seconds=-5), metadata=meta
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
        ),
        (
            stub.RedeliverWebhookDelivery(
                pb.RedeliverWebhookDeliveryRequest(id=hook.id, delivery_id="7"), metadata=meta
            ),
            grpc.StatusCode.NOT_FOUND,
            "WEBHOOK_DELIVERY_NOT_FOUND",
        ),
        (
            _stub(server, other_partner).EnableWebhook(
                pb.EnableWebhookRequest(id=hook.id), metadata=other_partner.metadata
            ),
            grpc.StatusCode.NOT_FOUND,
            "WEBHOOK_NOT_FOUND",
        ),
    ]
    for call, code, reason in refused:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call
        assert failed.value.code() == code
        assert reason_of(failed.value) == reason
