"""AccountService and CardService over gRPC."""

from __future__ import annotations

import grpc

from customers.v1 import accounts_pb2 as pb
from customers.v1 import accounts_pb2_grpc, resources_pb2
from server.rpc.context import partner
from server.rpc.http_status import answer_with
from server.services.accounts import AccountService
from server.transport import convert


class AccountServicer(accounts_pb2_grpc.AccountServiceServicer):
    def __init__(self, service: AccountService) -> None:
        self._service = service

    async def CreateAccount(
        self, request: pb.CreateAccountRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Account:
        account = await self._service.create_account(
            partner_id=partner(),
            customer_id=request.customer_id,
            type=convert.account_type(request.type),
            currencies=list(request.currencies),
        )
        await answer_with(context, 201)
        return convert.account(account)

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccountsResponse:
        page = await self._service.list_accounts(
            partner_id=partner(),
            customer_id=request.customer_id,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListAccountsResponse(
            accounts=[convert.account(a) for a in page.items], next_page_token=page.next_token
        )

    async def DeactivateAccount(
        self, request: pb.DeactivateAccountRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Account:
        return convert.account(
            await self._service.deactivate_account(
                partner_id=partner(), account_id=request.account_id
            )
        )

    async def ActivateAccount(
        self, request: pb.ActivateAccountRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Account:
        return convert.account(
            await self._service.activate_account(
                partner_id=partner(), account_id=request.account_id
            )
        )


class CardServicer(accounts_pb2_grpc.CardServiceServicer):
    def __init__(self, service: AccountService) -> None:
        self._service = service

    async def CreateCard(
        self, request: pb.CreateCardRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Card:
        card = await self._service.create_card(
            partner_id=partner(),
            account_id=request.account_id,
            type=convert.card_type(request.type),
        )
        await answer_with(context, 201)
        return convert.card(card)

    async def ListCards(
        self, request: pb.ListCardsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCardsResponse:
        page = await self._service.list_cards(
            partner_id=partner(),
            account_id=request.account_id,
            size=request.page_size,
            token=request.page_token,
        )
        return pb.ListCardsResponse(
            cards=[convert.card(c) for c in page.items], next_page_token=page.next_token
        )

    async def DeactivateCard(
        self, request: pb.DeactivateCardRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Card:
        return convert.card(
            await self._service.deactivate_card(partner_id=partner(), card_id=request.card_id)
        )

    async def ActivateCard(
        self, request: pb.ActivateCardRequest, context: grpc.aio.ServicerContext
    ) -> resources_pb2.Card:
        return convert.card(
            await self._service.activate_card(partner_id=partner(), card_id=request.card_id)
        )
