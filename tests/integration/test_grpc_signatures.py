"""No way around request signatures on the gRPC port (SPEC section 3): a native call must
carry its own RFC 9421 signature over the gRPC method path and the serialized message, a
REST signature or a claimed gateway attestation does not stand in for one, and only the
gateway may ask the ext_authz verifier for attestations."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from client.idempotency import new_key
from client.signing import (
    PrivateSigningKey,
    SerializableMessage,
    new_nonce,
    sign_headers,
)
from customers.v1 import (
    customers_pb2,
    customers_pb2_grpc,
    resources_pb2,
)
from server.adapters.attestation import HEADER as ATTESTATION
from server.adapters.attestation import Attestor
from server.app import RunningServer
from server.bootstrap import gateway_key, server_secret
from tests.helpers.wallets import caip10, new_wallet
from tests.integration.conftest import GrpcPartner, make_partner
from tests.integration.test_grpc_customers import reason_of

SERVICE = "/customers.v1.CustomerService"
CREATE, GET, DEACTIVATE = (
    f"{SERVICE}/CreateCustomer",
    f"{SERVICE}/GetCustomer",
    (f"{SERVICE}/DeactivateCustomer"),
)
Metadata = tuple[tuple[str, str], ...]


@dataclass
class Caller:
    """A partner whose private key the test holds: `signed` speaks through the SDK (setup
    and checks), `bare` through a channel that adds nothing (the attempts)."""

    signed: GrpcPartner
    bare: customers_pb2_grpc.CustomerServiceStub
    key: PrivateSigningKey
    authorization: str
    authority: str  # the host of CUSTOMERS_PUBLIC_URL: what native signatures cover
    now: Callable[[], int]  # the server's (steppable) clock

    def metadata(
        self,
        path: str,
        message: SerializableMessage,
        *,
        modifying: bool = False,
        method: str = "POST",
        authority: str | None = None,
        body: bytes | None = None,
    ) -> Metadata:
        """Hand-built metadata, as the SDK builds it: signature over `path` and `body`
        (default: the serialized `message`); the parameters let a test sign something else
        than what it then sends."""
        headers = {"authorization": self.authorization}
        if modifying:
            headers["idempotency-key"] = new_key()
        added = sign_headers(
            self.key,
            method=method,
            authority=authority or self.authority,
            path=path,
            query="",
            headers=headers,
            body=message.SerializeToString() if body is None else body,
            now=self.now(),
            nonce=new_nonce(),
        )
        return (*headers.items(), *((name.lower(), value) for name, value in added.items()))

    async def customer_ids(self) -> list[str]:
        listed = await self.signed.customers.ListCustomers(
            customers_pb2.ListCustomersRequest(), metadata=self.signed.metadata
        )
        return [customer.id for customer in listed.customers]

    async def status_of(self, customer_id: str) -> resources_pb2.Customer.Status:
        found: resources_pb2.Customer = await self.signed.customers.GetCustomer(
            customers_pb2.GetCustomerRequest(customer_id=customer_id),
            metadata=self.signed.metadata,
        )
        return found.status


@pytest.fixture
async def caller(server: RunningServer, channel: grpc.aio.Channel) -> AsyncIterator[Caller]:
    signed = await make_partner(server, channel)
    assert signed.key is not None
    clock = server.container.clock
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as bare:
        yield Caller(
            signed=signed,
            bare=customers_pb2_grpc.CustomerServiceStub(bare),
            key=signed.key,
            authorization=dict(signed.metadata)["authorization"],
            authority=server.container.settings.public_authority,
            now=lambda: int(clock.now().timestamp()),
        )


def new_customer() -> customers_pb2.CreateCustomerRequest:
    return customers_pb2.CreateCustomerRequest(
        chain_id=caip10(new_wallet()), external_id=uuid.uuid4().hex
    )


def deactivation(customer_id: str) -> customers_pb2.DeactivateCustomerRequest:
    return customers_pb2.DeactivateCustomerRequest(customer_id=customer_id)


async def assert_unauthenticated(call: object, reason: str) -> str:
    """Await `call`; it must fail UNAUTHENTICATED with `reason`. Returns the message."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, raised.value.details()
    assert reason_of(raised.value) == reason, raised.value.details()
    return raised.value.details() or ""


async def test_a_hand_signed_native_call_is_accepted(caller: Caller) -> None:
    """The reference for the attempts below: the same construction, unaltered, verifies."""
    request = new_customer()
    created = await caller.bare.CreateCustomer(
        request, metadata=caller.metadata(CREATE, request, modifying=True)
    )
    assert await caller.customer_ids() == [created.id]
    fetched = customers_pb2.GetCustomerRequest(customer_id=created.id)
    assert (await caller.bare.GetCustomer(fetched, metadata=caller.metadata(GET, fetched))).id


async def test_a_native_call_with_only_a_token_is_unauthenticated_and_creates_nothing(
    caller: Caller,
) -> None:
    metadata = (("authorization", caller.authorization), ("idempotency-key", new_key()))
    message = await assert_unauthenticated(
        caller.bare.CreateCustomer(new_customer(), metadata=metadata), "SIGNATURE_MISSING"
    )
    assert "Signature" in message
    assert await caller.customer_ids() == []


async def test_a_rest_signature_copied_onto_a_native_call_is_rejected(caller: Caller) -> None:
    customer = await caller.signed.active_customer()
    gateway_target = f"/customers/{customer.id}/deactivate"
    request = deactivation(customer.id)
    # Verbatim, as the gateway would have seen a bodiless PATCH: the message has bytes.
    rest = caller.metadata(gateway_target, request, modifying=True, method="PATCH", body=b"")
    await assert_unauthenticated(
        caller.bare.DeactivateCustomer(request, metadata=rest), "DIGEST_MISSING"
    )
    # With a digest of the right bytes added to the REST signature: the method and path differ.
    rest = caller.metadata(gateway_target, request, modifying=True, method="PATCH")
    await assert_unauthenticated(
        caller.bare.DeactivateCustomer(request, metadata=rest), "SIGNATURE_INVALID"
    )
    # A GET of the customer, signed for the gateway, replayed against the native method.
    fetched = customers_pb2.GetCustomerRequest(customer_id=customer.id)
    rest = caller.metadata(f"/customers/{customer.id}", fetched, method="GET", body=b"")
    await assert_unauthenticated(caller.bare.GetCustomer(fetched, metadata=rest), "DIGEST_MISSING")
    assert await caller.status_of(customer.id) == resources_pb2.Customer.active


async def test_a_signature_for_another_method_is_rejected_and_changes_nothing(
    caller: Caller,
) -> None:
    customer = await caller.signed.active_customer()
    read = customers_pb2.GetCustomerRequest(customer_id=customer.id)
    # Same field numbers, so the same bytes and digest: only @path tells the two apart.
    assert read.SerializeToString() == deactivation(customer.id).SerializeToString()
    metadata = caller.metadata(GET, read, modifying=True)
    await assert_unauthenticated(
        caller.bare.DeactivateCustomer(deactivation(customer.id), metadata=metadata),
        "SIGNATURE_INVALID",
    )
    assert await caller.status_of(customer.id) == resources_pb2.Customer.active


async def test_a_signature_for_another_authority_is_rejected(caller: Caller) -> None:
    request = new_customer()
    metadata = caller.metadata(CREATE, request, modifying=True, authority="evil.example")
    await assert_unauthenticated(
        caller.bare.CreateCustomer(request, metadata=metadata), "SIGNATURE_INVALID"
    )
    assert await caller.customer_ids() == []


async def test_a_content_digest_over_other_bytes_is_rejected_and_creates_nothing(
    caller: Caller,
) -> None:
    signed_for, sent = new_customer(), new_customer()
    metadata = caller.metadata(CREATE, signed_for, modifying=True)
    message = await assert_unauthenticated(
        caller.bare.CreateCustomer(sent, metadata=metadata), "DIGEST_MISMATCH"
    )
    assert "Content-Digest" in message
    assert await caller.customer_ids() == []


async def _attestor(server: RunningServer) -> Attestor:
    return Attestor(await server_secret(server.container.engine, "attestation"))


async def test_a_forged_gateway_attestation_is_rejected_and_changes_nothing(
    server: RunningServer, caller: Caller
) -> None:
    customer = await caller.signed.active_customer()
    partner_id, key_id, now = caller.signed.partner_id, caller.key.key_id, caller.now()
    genuine = await _attestor(server)
    forgeries = {
        "random": f"v1.{partner_id}.{key_id}.{now}.{secrets.token_hex(32)}",
        "garbage": "not an attestation",
        "wrong secret": Attestor(secrets.token_hex(32)).issue(
            request_id="req-1", partner_id=uuid.UUID(partner_id), key_id=key_id, now=now
        ),
        "another request id": genuine.issue(
            request_id="req-0", partner_id=uuid.UUID(partner_id), key_id=key_id, now=now
        ),
        "expired": genuine.issue(
            request_id="req-1", partner_id=uuid.UUID(partner_id), key_id=key_id, now=now - 60
        ),
    }
    for forged in forgeries.values():
        metadata = (
            ("authorization", caller.authorization),
            ("idempotency-key", new_key()),
            ("x-request-id", "req-1"),
            (ATTESTATION, forged),
        )
        await assert_unauthenticated(
            caller.bare.DeactivateCustomer(deactivation(customer.id), metadata=metadata),
            "ATTESTATION_INVALID",
        )
    assert await caller.status_of(customer.id) == resources_pb2.Customer.active
    # The control: the verifier's own attestation for this request id is what passes.
    real = genuine.issue(
        request_id="req-1", partner_id=uuid.UUID(partner_id), key_id=key_id, now=caller.now()
    )
    metadata = (
        ("authorization", caller.authorization),
        ("idempotency-key", new_key()),
        ("x-request-id", "req-1"),
        (ATTESTATION, real),
    )
    await caller.bare.DeactivateCustomer(deactivation(customer.id), metadata=metadata)
    assert await caller.status_of(customer.id) == resources_pb2.Customer.inactive


async def test_an_attestation_is_not_accepted_in_place_of_a_signature_even_when_signed(
    caller: Caller,
) -> None:
    """A valid native signature plus a forged attestation is still refused: the attestation,
    when present, is what gets checked, so it cannot smuggle anything past."""
    request = new_customer()
    metadata = (
        *caller.metadata(CREATE, request, modifying=True),
        (ATTESTATION, f"v1.{caller.signed.partner_id}.-.{caller.now()}.{secrets.token_hex(32)}"),
    )
    await assert_unauthenticated(
        caller.bare.CreateCustomer(request, metadata=metadata), "ATTESTATION_INVALID"
    )
    assert await caller.customer_ids() == []


def _check_request(caller: Caller) -> external_auth_pb2.CheckRequest:
    """What Envoy would send for a bodiless GET /customers with the caller's token."""
    check = external_auth_pb2.CheckRequest()
    http = check.attributes.request.http
    http.method, http.path, http.host = "GET", "/customers", caller.authority
    http.headers["authorization"] = caller.authorization
    http.headers["x-request-id"] = "req-1"
    return check


@pytest.mark.parametrize(
    "presented", [(), (("x-gateway-key", "guess"),)], ids=["no gateway key", "wrong gateway key"]
)
async def test_only_the_gateway_may_ask_the_verifier_for_an_attestation(
    channel: grpc.aio.Channel, caller: Caller, presented: Metadata
) -> None:
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Check(_check_request(caller), metadata=presented)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_the_verifier_answers_the_gateway_and_denies_an_unsigned_request(
    server: RunningServer, channel: grpc.aio.Channel, caller: Caller
) -> None:
    """The control for the test above: with the gateway's key the same Check is answered,
    and an unsigned request gets a denial, not an attestation."""
    secret = await server_secret(server.container.engine, "attestation")
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    answer = await stub.Check(
        _check_request(caller), metadata=(("x-gateway-key", gateway_key(secret)),)
    )
    assert answer.HasField("denied_response")
    assert b"SIGNATURE_MISSING" in answer.denied_response.body.encode()
