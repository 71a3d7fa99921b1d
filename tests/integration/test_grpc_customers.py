"""Customer flows over native gRPC, on SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from customers.v1 import accounts_pb2, customers_pb2, resources_pb2
from tests.helpers.wallets import caip10, new_wallet
from tests.integration.conftest import GrpcPartner

Status = resources_pb2.Customer


def reason_of(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None, "error carries no google.rpc.Status"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    raise AssertionError("no ErrorInfo detail")


async def create(partner: GrpcPartner, chain_id: str, external_id: str) -> resources_pb2.Customer:
    return await partner.customers.CreateCustomer(
        customers_pb2.CreateCustomerRequest(chain_id=chain_id, external_id=external_id),
        metadata=partner.metadata,
    )


async def test_created_customer_is_initiating_with_a_challenge_and_verification_url(
    partner: GrpcPartner,
) -> None:
    wallet = new_wallet()
    call = partner.customers.CreateCustomer(
        customers_pb2.CreateCustomerRequest(chain_id=caip10(wallet).lower(), external_id="u-1"),
        metadata=partner.metadata,
    )
    created = await call
    assert created.status == Status.initiating
    assert created.chain_id == caip10(wallet)  # normalised to the EIP-55 address
    assert created.challenge and created.verification_url.startswith("http")
    assert ("x-http-status", "201") in tuple(await call.initial_metadata())
    fetched = await partner.customers.GetCustomer(
        customers_pb2.GetCustomerRequest(customer_id=created.id), metadata=partner.metadata
    )
    assert fetched.id == created.id and not fetched.challenge


async def test_duplicate_chain_or_external_id_is_rejected_within_a_partner_only(
    partner: GrpcPartner, other_partner: GrpcPartner
) -> None:
    wallet = new_wallet()
    await create(partner, caip10(wallet), "same")
    for chain_id, external_id in [(caip10(new_wallet()), "same"), (caip10(wallet).lower(), "x")]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create(partner, chain_id, external_id)
        assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert reason_of(raised.value) == "CUSTOMER_ALREADY_EXISTS"
    other = await create(other_partner, caip10(wallet), "same")
    assert other.status == Status.initiating


async def test_invalid_input_names_the_field_and_writes_nothing(partner: GrpcPartner) -> None:
    bad = [
        ("eip155:1:0xAB16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb", "u", "chainId"),  # checksum
        ("not-caip", "u", "chainId"),
        (caip10(new_wallet()), "", "externalId"),
        (caip10(new_wallet()), "x" * 129, "externalId"),
        (caip10(new_wallet()), "tab\there", "externalId"),
    ]
    for chain_id, external_id, field in bad:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create(partner, chain_id, external_id)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (raised.value.details() or "")
        assert reason_of(raised.value) == "INVALID_FIELD"
    listed = await partner.customers.ListCustomers(
        customers_pb2.ListCustomersRequest(), metadata=partner.metadata
    )
    assert list(listed.customers) == []


async def test_another_partners_customer_is_not_found_for_every_method(
    partner: GrpcPartner, other_partner: GrpcPartner
) -> None:
    customer = await partner.active_customer()
    account = await partner.accounts.CreateAccount(
        accounts_pb2.CreateAccountRequest(
            customer_id=customer.id, type=resources_pb2.Account.card_account, currencies=["EUR"]
        ),
        metadata=partner.metadata,
    )
    card = await partner.cards.CreateCard(
        accounts_pb2.CreateCardRequest(account_id=account.id, type=resources_pb2.Card.virtual),
        metadata=partner.metadata,
    )
    md = other_partner.metadata
    calls = [
        other_partner.customers.GetCustomer(
            customers_pb2.GetCustomerRequest(customer_id=customer.id), metadata=md
        ),
        other_partner.customers.DeactivateCustomer(
            customers_pb2.DeactivateCustomerRequest(customer_id=customer.id), metadata=md
        ),
        other_partner.customers.ActivateCustomer(
            customers_pb2.ActivateCustomerRequest(customer_id=customer.id), metadata=md
        ),
        other_partner.customers.GetChallenge(
            customers_pb2.GetChallengeRequest(customer_id=customer.id), metadata=md
        ),
        other_partner.accounts.ListAccounts(
            accounts_pb2.ListAccountsRequest(customer_id=customer.id), metadata=md
        ),
        other_partner.accounts.CreateAccount(
            accounts_pb2.CreateAccountRequest(customer_id=customer.id, type=1, currencies=["EUR"]),
            metadata=md,
        ),
        other_partner.accounts.DeactivateAccount(
            accounts_pb2.DeactivateAccountRequest(account_id=account.id), metadata=md
        ),
        other_partner.cards.ListCards(
            accounts_pb2.ListCardsRequest(account_id=account.id), metadata=md
        ),
        other_partner.cards.CreateCard(
            accounts_pb2.CreateCardRequest(account_id=account.id, type=1), metadata=md
        ),
        other_partner.cards.DeactivateCard(
            accounts_pb2.DeactivateCardRequest(card_id=card.id), metadata=md
        ),
        other_partner.cards.ActivateCard(
            accounts_pb2.ActivateCardRequest(card_id=card.id), metadata=md
        ),
    ]
    for pending in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pending
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    still = await partner.cards.ListCards(
        accounts_pb2.ListCardsRequest(account_id=account.id), metadata=partner.metadata
    )
    assert [c.status for c in still.cards] == [resources_pb2.Card.active]


async def test_list_is_newest_first_and_pages_without_gaps_or_repeats(
    partner: GrpcPartner,
) -> None:
    made = [await create(partner, caip10(new_wallet()), f"u-{i}") for i in range(7)]
    seen: list[str] = []
    token = ""
    while True:
        page = await partner.customers.ListCustomers(
            customers_pb2.ListCustomersRequest(page_size=3, page_token=token),
            metadata=partner.metadata,
        )
        seen += [c.id for c in page.customers]
        token = page.next_page_token
        if not token:
            break
    assert seen == [c.id for c in reversed(made)]
    filtered = await partner.customers.ListCustomers(
        customers_pb2.ListCustomersRequest(external_id="u-3"), metadata=partner.metadata
    )
    assert [c.id for c in filtered.customers] == [made[3].id]
    by_status = await partner.customers.ListCustomers(
        customers_pb2.ListCustomersRequest(status=Status.active), metadata=partner.metadata
    )
    assert list(by_status.customers) == []


async def test_deactivation_cascades_and_activation_restores_exactly_what_it_changed(
    partner: GrpcPartner,
) -> None:
    md = partner.metadata
    customer = await partner.active_customer()
    kept, own = [
        await partner.accounts.CreateAccount(
            accounts_pb2.CreateAccountRequest(customer_id=customer.id, type=1, currencies=["EUR"]),
            metadata=md,
        )
        for _ in range(2)
    ]
    card = await partner.cards.CreateCard(
        accounts_pb2.CreateCardRequest(account_id=kept.id, type=1), metadata=md
    )
    # The partner switches one account off on its own: reactivation must leave it off.
    await partner.accounts.DeactivateAccount(
        accounts_pb2.DeactivateAccountRequest(account_id=own.id), metadata=md
    )
    off = await partner.customers.DeactivateCustomer(
        customers_pb2.DeactivateCustomerRequest(customer_id=customer.id), metadata=md
    )
    assert off.status == Status.inactive
    accounts = await partner.accounts.ListAccounts(
        accounts_pb2.ListAccountsRequest(customer_id=customer.id), metadata=md
    )
    assert {a.status for a in accounts.accounts} == {resources_pb2.Account.inactive}
    cards = await partner.cards.ListCards(
        accounts_pb2.ListCardsRequest(account_id=kept.id), metadata=md
    )
    assert [c.status for c in cards.cards] == [resources_pb2.Card.inactive]
    # Activating a card of an inactive customer is a state conflict.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await partner.cards.ActivateCard(
            accounts_pb2.ActivateCardRequest(card_id=card.id), metadata=md
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    on = await partner.customers.ActivateCustomer(
        customers_pb2.ActivateCustomerRequest(customer_id=customer.id), metadata=md
    )
    assert on.status == Status.active
    accounts = await partner.accounts.ListAccounts(
        accounts_pb2.ListAccountsRequest(customer_id=customer.id), metadata=md
    )
    assert {a.id: a.status for a in accounts.accounts} == {
        kept.id: resources_pb2.Account.active,
        own.id: resources_pb2.Account.inactive,
    }
    cards = await partner.cards.ListCards(
        accounts_pb2.ListCardsRequest(account_id=kept.id), metadata=md
    )
    assert [c.status for c in cards.cards] == [resources_pb2.Card.active]


async def test_repeated_deactivate_and_activate_are_no_ops(partner: GrpcPartner) -> None:
    md = partner.metadata
    customer = await partner.active_customer()
    again = await partner.customers.ActivateCustomer(
        customers_pb2.ActivateCustomerRequest(customer_id=customer.id), metadata=md
    )
    assert again.status == Status.active and again.updated_at == customer.updated_at
    for _ in range(2):
        off = await partner.customers.DeactivateCustomer(
            customers_pb2.DeactivateCustomerRequest(customer_id=customer.id), metadata=md
        )
        assert off.status == Status.inactive


async def test_state_conflicts_name_the_current_status(partner: GrpcPartner) -> None:
    created = await create(partner, caip10(new_wallet()), "pending")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await partner.customers.DeactivateCustomer(
            customers_pb2.DeactivateCustomerRequest(customer_id=created.id),
            metadata=partner.metadata,
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "initiating" in (raised.value.details() or "")
    assert reason_of(raised.value) == "INVALID_STATE_TRANSITION"
    assert ("x-http-status", "409") in tuple(raised.value.initial_metadata() or ())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await partner.accounts.CreateAccount(
            accounts_pb2.CreateAccountRequest(customer_id=created.id, type=1, currencies=["EUR"]),
            metadata=partner.metadata,
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_calls_without_a_valid_token_are_unauthenticated(
    partner: GrpcPartner,
) -> None:
    for metadata in [(), (("authorization", "Bearer nonsense"),), (("authorization", "Basic x"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await partner.customers.ListCustomers(
                customers_pb2.ListCustomersRequest(), metadata=metadata
            )
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
