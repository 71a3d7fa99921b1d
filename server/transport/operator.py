"""OperatorService over gRPC (internal service principals only; the auth interceptor has
checked the caller's certificate and role before any of this runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from customers.v1 import accounts_pb2, operator_pb2_grpc, resources_pb2
from customers.v1 import operator_pb2 as pb
from server.domain.errors import InvalidField
from server.domain.operator import OperatorAction
from server.events.watch import EveryoneWatch
from server.rpc.context import principal
from server.services.operator import OperatorService
from server.transport import convert


class OperatorServicer(operator_pb2_grpc.OperatorServiceServicer):
    def __init__(self, service: OperatorService, watch: EveryoneWatch) -> None:
        self._service = service
        self._watch = watch

    async def GetCustomer(
        self, request: pb.OperatorGetCustomerRequest, context: grpc.aio.ServicerContext
    ) -> pb.OperatorCustomer:
        found = await self._service.get_customer(customer_id=request.customer_id)
        return convert.operator_customer(found)

    async def ListCustomers(
        self, request: pb.OperatorListCustomersRequest, context: grpc.aio.ServicerContext
    ) -> pb.OperatorListCustomersResponse:
        if request.status not in resources_pb2.Customer.Status.values():
            raise InvalidField("status", "status is not a customer status")
        page = await self._service.list_customers(
            partner_id=request.partner_id,
            size=request.page_size,
            token=request.page_token,
            status=convert.customer_status(request.status),
        )
        return pb.OperatorListCustomersResponse(
            customers=[convert.operator_customer(c) for c in page.items],
            next_page_token=page.next_token,
        )

    async def GetAccount(
        self, request: pb.OperatorGetAccountRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Account:
        return convert.account(await self._service.get_account(account_id=request.account_id))

    async def ListAccounts(
        self, request: accounts_pb2.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.ListAccountsResponse:
        page = await self._service.list_accounts(
            customer_id=request.customer_id, size=request.page_size, token=request.page_token
        )
        return accounts_pb2.ListAccountsResponse(
            accounts=[convert.account(a) for a in page.items], next_page_token=page.next_token
        )

    async def GetCard(
        self, request: pb.OperatorGetCardRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Card:
        return convert.card(await self._service.get_card(card_id=request.card_id))

    async def ListCards(
        self, request: accounts_pb2.ListCardsRequest, context: grpc.aio.ServicerContext
    ) -> accounts_pb2.ListCardsResponse:
        page = await self._service.list_cards(
            account_id=request.account_id, size=request.page_size, token=request.page_token
        )
        return accounts_pb2.ListCardsResponse(
            cards=[convert.card(c) for c in page.items], next_page_token=page.next_token
        )

    async def _act(
        self, action: OperatorAction, request: pb.OperatorActionRequest
    ) -> pb.OperatorCustomer:
        changed = await self._service.act(
            principal=principal(),
            action=action,
            customer_id=request.customer_id,
            reason=request.reason,
        )
        return convert.operator_customer(changed)

    async def SuspendCustomer(
        self, request: pb.OperatorActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.OperatorCustomer:
        return await self._act(OperatorAction.SUSPEND, request)

    async def ReinstateCustomer(
        self, request: pb.OperatorActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.OperatorCustomer:
        return await self._act(OperatorAction.REINSTATE, request)

    async def RejectCustomer(
        self, request: pb.OperatorActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.OperatorCustomer:
        return await self._act(OperatorAction.REJECT, request)

    async def WatchAllCustomers(
        self, request: pb.WatchAllCustomersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.OperatorCustomerEvent]:
        after = request.after if request.HasField("after") else None
        if after is not None and after < 0:
            raise InvalidField("after", "after must not be negative")
        async for change in self._watch.stream(after=after):
            yield convert.operator_customer_event(change)
