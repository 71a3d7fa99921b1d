"""CustomerService and SimulatorService over gRPC: translate, call one use case, translate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import grpc
from google.protobuf import empty_pb2

from customers.v1 import customers_pb2 as pb
from customers.v1 import customers_pb2_grpc, resources_pb2, simulator_pb2, simulator_pb2_grpc
from server.domain.errors import InvalidField
from server.domain.events import ChangeEvent
from server.events.watch import CustomerWatch
from server.rpc.context import partner
from server.rpc.http_status import answer_with
from server.services.customers import CustomerService
from server.transport import convert

HEARTBEAT = pb.CustomerEvent(heartbeat=True)
HEARTBEAT_BYTES = HEARTBEAT.SerializeToString()


class StreamMessages:
    """One serialized message per event for every stream that carries it: a change that
    2,000 streams watch is converted and serialized once, not 2,000 times (converting the
    payload back into its message was a third of the server's Python time in the fan-out,
    and serializing the shared message once per stream was the next cost). The bytes go to
    every stream as they are (handlers.passing_bytes is every stream's serializer).

    The hub hands an event to every stream within milliseconds, so only the newest few
    hundred events are ever asked for twice. The bound keeps the memory small and steady:
    a message was ~1.4 KiB of protobuf arena (memray), its bytes are a few hundred; 1,024
    of them per worker. At 4,096 the cache took a soak's first ten minutes to fill, which
    read as a leak."""

    def __init__(self, size: int = 1_024) -> None:
        self._size = size
        self._messages: dict[tuple[UUID, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._messages)

    def of(self, change: ChangeEvent | None) -> bytes:
        if change is None:
            return HEARTBEAT_BYTES
        key = (change.partner_id, change.seq)
        message = self._messages.get(key)
        if message is None:
            message = convert.customer_event(change).SerializeToString()
            if len(self._messages) >= self._size:
                del self._messages[next(iter(self._messages))]  # the oldest
            self._messages[key] = message
        return message


class CustomerServicer(customers_pb2_grpc.CustomerServiceServicer):
    def __init__(self, service: CustomerService, watch: CustomerWatch) -> None:
        self._service = service
        self._watch = watch
        self._messages = StreamMessages()

    async def WatchCustomers(
        self, request: pb.WatchCustomersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """CustomerEvent messages, serialized (StreamMessages)."""
        # Every check happens before the first message, so failures are real HTTP errors.
        customer_id = None
        if request.customer_id:
            customer = await self._service.get(
                partner_id=partner(), customer_id=request.customer_id
            )
            customer_id = customer.id
        after = request.after if request.HasField("after") else None
        if after is not None and after < 0:
            raise InvalidField("after", "after must not be negative")
        changes = self._watch.stream(partner_id=partner(), after=after, customer_id=customer_id)
        async for change in changes:
            yield self._messages.of(change)

    async def CreateCustomer(
        self, request: pb.CreateCustomerRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Customer:
        created = await self._service.create(
            partner_id=partner(), chain_id=request.chain_id, external_id=request.external_id
        )
        await answer_with(context, 201)
        return convert.customer(
            created.customer,
            challenge=created.challenge or None,
            verification_url=created.verification_url,
        )

    async def ListCustomers(
        self, request: pb.ListCustomersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCustomersResponse:
        if request.status not in resources_pb2.Customer.Status.values():
            raise InvalidField("status", "status is not a customer status")
        page = await self._service.list(
            partner_id=partner(),
            size=request.page_size,
            token=request.page_token,
            status=convert.customer_status(request.status),
            external_id=request.external_id or None,
        )
        return pb.ListCustomersResponse(
            customers=[convert.customer(c) for c in page.items], next_page_token=page.next_token
        )

    async def GetCustomer(
        self, request: pb.GetCustomerRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Customer:
        found = await self._service.get(partner_id=partner(), customer_id=request.customer_id)
        return convert.customer(found)

    async def DeactivateCustomer(
        self, request: pb.DeactivateCustomerRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Customer:
        changed = await self._service.deactivate(
            partner_id=partner(), customer_id=request.customer_id
        )
        return convert.customer(changed)

    async def ActivateCustomer(
        self, request: pb.ActivateCustomerRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Customer:
        changed = await self._service.activate(
            partner_id=partner(), customer_id=request.customer_id
        )
        return convert.customer(changed)

    async def GetChallenge(
        self, request: pb.GetChallengeRequest, context: grpc.aio.ServicerContext
    ) -> pb.Challenge:
        current = await self._service.current_challenge(
            partner_id=partner(), customer_id=request.customer_id
        )
        return pb.Challenge(
            challenge=current.challenge, expires_at=convert.timestamp(current.expires_at)
        )

    async def SignChallenge(
        self, request: pb.SignChallengeRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self._service.sign_challenge(
            partner_id=partner(),
            customer_id=request.customer_id,
            signature=request.signature,
            signer=request.signer,
            challenge=request.challenge,
        )
        await answer_with(context, 204)
        return empty_pb2.Empty()


class SimulatorServicer(simulator_pb2_grpc.SimulatorServiceServicer):
    def __init__(self, service: CustomerService) -> None:
        self._service = service

    async def VerifyCustomer(
        self, request: simulator_pb2.SimulateKycRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self._service.simulate_kyc(
            partner_id=partner(), customer_id=request.customer_id, approved=True
        )
        await answer_with(context, 202)
        return empty_pb2.Empty()

    async def RejectCustomer(
        self, request: simulator_pb2.SimulateKycRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self._service.simulate_kyc(
            partner_id=partner(), customer_id=request.customer_id, approved=False
        )
        await answer_with(context, 202)
        return empty_pb2.Empty()
