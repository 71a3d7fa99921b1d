"""No way around request signatures on the gRPC port (SPEC section 3): a native call must
carry its own RFC 9421 signature over the gRPC method path and the serialized message; a
REST signature does not stand in for one, and neither do headers claiming to be what the
gateway forwards about a REST request: those count only over the gateway's Unix socket."""

from __future__ import annotations

import base64
import os
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest

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
from server import app
from server.app import RunningServer
from server.config import Settings
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


def rest_claim(caller: Caller, customer_id: str) -> Metadata:
    """A PATCH /customers/{id}/deactivate signed for the REST door, with the headers the
    gateway would forward about it (gateway/request.lua)."""
    target = f"/customers/{customer_id}/deactivate"
    signed = caller.metadata(
        target, deactivation(customer_id), modifying=True, method="PATCH", body=b""
    )
    return (
        *signed,
        ("x-gateway-method", "PATCH"),
        ("x-gateway-authority", caller.authority),
        ("x-gateway-target", target),
    )


async def test_gateway_headers_sent_to_the_tcp_port_are_ignored_and_change_nothing(
    caller: Caller,
) -> None:
    """A direct caller claiming to be the gateway is verified as the native call it is."""
    customer = await caller.signed.active_customer()
    await assert_unauthenticated(
        caller.bare.DeactivateCustomer(
            deactivation(customer.id), metadata=rest_claim(caller, customer.id)
        ),
        "DIGEST_MISSING",  # a native call's digest covers the message's bytes
    )
    assert await caller.status_of(customer.id) == resources_pb2.Customer.active


async def test_the_same_rest_request_over_the_gateway_socket_is_verified_as_rest(
    server: RunningServer, caller: Caller
) -> None:
    """The control for the test above: the only difference is the socket it arrives on."""
    customer = await caller.signed.active_customer()
    async with grpc.aio.insecure_channel(f"unix:{server.gateway_socket}") as gateway:
        stub = customers_pb2_grpc.CustomerServiceStub(gateway)
        await stub.DeactivateCustomer(
            deactivation(customer.id), metadata=rest_claim(caller, customer.id)
        )
    assert await caller.status_of(customer.id) == resources_pb2.Customer.inactive


async def test_over_the_gateway_socket_the_content_digest_binds_the_forwarded_body(
    server: RunningServer, caller: Caller
) -> None:
    """A REST body is checked against the raw bytes the gateway forwards, not the message."""
    request = new_customer()
    body = b'{"chainId":"%s","externalId":"%s"}' % (
        request.chain_id.encode(),
        request.external_id.encode(),
    )
    signed = caller.metadata("/customers", request, modifying=True, body=body)
    forwarded = (
        *signed,
        ("x-gateway-method", "POST"),
        ("x-gateway-authority", caller.authority),
        ("x-gateway-target", "/customers"),
    )
    async with grpc.aio.insecure_channel(f"unix:{server.gateway_socket}") as gateway:
        stub = customers_pb2_grpc.CustomerServiceStub(gateway)
        other = base64.b64encode(body.replace(b"externalId", b"externalID")).decode()
        await assert_unauthenticated(
            stub.CreateCustomer(request, metadata=(*forwarded, ("x-gateway-body", other))),
            "DIGEST_MISMATCH",
        )
        assert await caller.customer_ids() == []
        raw = base64.b64encode(body).decode()
        await stub.CreateCustomer(request, metadata=(*forwarded, ("x-gateway-body", raw)))
    assert len(await caller.customer_ids()) == 1


def test_the_gateway_socket_is_reachable_only_by_the_service_user(server: RunningServer) -> None:
    folder = os.path.dirname(server.gateway_socket)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert os.stat(folder).st_uid == os.getuid()


async def test_a_worker_refuses_to_start_with_a_socket_directory_others_can_enter(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("open")
    os.chmod(folder, 0o755)
    settings = Settings(
        database_url=database_url, grpc_port=0, metrics_port=0, gateway_socket_dir=str(folder)
    )
    with pytest.raises(RuntimeError, match="0700"):
        await app.start(settings)


async def test_undecodable_message_bytes_correctly_signed_are_invalid_argument(
    server: RunningServer, caller: Caller
) -> None:
    garbage = b"\x0a\xff\xff\xff\xff\xff"  # field 1, a length no message can have
    metadata = caller.metadata(CREATE, new_customer(), modifying=True, body=garbage)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as raw:
        call = raw.unary_unary(CREATE, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(garbage, metadata=metadata)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(raised.value) == "MALFORMED_REQUEST"
    assert "protobuf" in (raised.value.details() or "")
    assert await caller.customer_ids() == []


async def test_undecodable_message_bytes_unsigned_are_unauthenticated_first(
    server: RunningServer, caller: Caller
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as raw:
        call = raw.unary_unary(CREATE, request_serializer=None, response_deserializer=None)
        metadata = (("authorization", caller.authorization), ("idempotency-key", new_key()))
        await assert_unauthenticated(call(b"\x0a\xff", metadata=metadata), "SIGNATURE_MISSING")


async def test_there_is_no_verifier_left_to_ask_for_a_pass(
    server: RunningServer, caller: Caller
) -> None:
    """The ext_authz Check that once handed out attestations is gone: asking it is refused
    like any unknown method, before anything runs."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as raw:
        check = raw.unary_unary(
            "/envoy.service.auth.v3.Authorization/Check",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await check(b"", metadata=(("authorization", caller.authorization),))
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
