"""EventService over gRPC: catch-up reads of the outbox."""

from __future__ import annotations

from typing import Any

from customers.v1 import events_pb2 as pb
from customers.v1 import events_pb2_grpc
from server.rpc.context import partner
from server.services.events import EventService
from server.transport import convert


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(self, service: EventService) -> None:
        self._service = service

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Any
    ) -> pb.ListEventsResponse:
        page = await self._service.list(
            partner_id=partner(),
            after=request.after,
            types=list(request.types),
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListEventsResponse(
            events=[convert.event(e) for e in page.items], next_page_token=page.next_token
        )
