"""The REST JSON check (server/rpc/rest_json.py): what proto3 parsing would take but the
published contract does not is refused, naming the field; what the contract allows passes."""

from __future__ import annotations

import json

import pytest

from customers.v1 import accounts_pb2, customers_pb2, events_pb2, webhooks_pb2
from server.domain.errors import InvalidJson
from server.rpc.rest_json import check_body, check_query

ACCOUNT = accounts_pb2.CreateAccountRequest.DESCRIPTOR
CUSTOMER = customers_pb2.CreateCustomerRequest.DESCRIPTOR
WEBHOOK = webhooks_pb2.PutWebhookRequest.DESCRIPTOR


def _body(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "card_account", "currencies": "EUR"}, "currencies"),
        ({"type": None, "currencies": ["EUR"]}, "type"),
        ({"type": "card_account", "currencies": None}, "currencies"),
        ({"type": "card_account", "currencies": ["EUR", None]}, "currencies[1]"),
        ({"type": 1, "currencies": ["EUR"]}, "type"),
        ({"type": "card_account", "currencies": [7]}, "currencies[0]"),
        ({"type": "savings", "currencies": ["EUR"]}, "type"),
    ],
)
def test_json_the_contract_does_not_allow_is_refused_naming_the_field(
    body: object, field: str
) -> None:
    with pytest.raises(InvalidJson) as refused:
        check_body(_body(body), ACCOUNT)
    assert refused.value.field == field
    assert refused.value.reason == "INVALID_REQUEST"
    assert field in refused.value.message


@pytest.mark.parametrize(
    ("descriptor", "body"),
    [
        (ACCOUNT, {"type": "card_account", "currencies": ["EUR", "USD"]}),
        (ACCOUNT, {}),
        (CUSTOMER, {"chainId": "eip155:1:0xab", "external_id": "u-1", "unknown": None}),
        (WEBHOOK, {"callbackUrl": "https://x.example/h", "types": []}),
    ],
)
def test_json_the_contract_allows_passes(descriptor: object, body: object) -> None:
    check_body(_body(body), descriptor)  # type: ignore[arg-type]


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidJson, match="JSON object"):
        check_body(b'["EUR"]', ACCOUNT)


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=0", "status"), ("status=2&pageSize=5", "status"), ("pageSize=5.0", "pageSize")],
)
def test_query_values_the_contract_does_not_allow_are_refused(query: str, field: str) -> None:
    with pytest.raises(InvalidJson) as refused:
        check_query(query, customers_pb2.ListCustomersRequest.DESCRIPTOR)
    assert refused.value.field == field


@pytest.mark.parametrize(
    "query", ["status=active&pageSize=10", "page_size=3&externalId=", "after=5&types=x"]
)
def test_query_values_the_contract_allows_pass(query: str) -> None:
    message = (
        events_pb2.ListEventsRequest.DESCRIPTOR
        if "after" in query
        else customers_pb2.ListCustomersRequest.DESCRIPTOR
    )
    check_query(query, message)
