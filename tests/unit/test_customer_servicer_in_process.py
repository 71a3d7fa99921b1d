"""CustomerService served in-process with the real interceptor chain over the fake unit of
work, through pytest-grpc-aio's fixture contract (grpc_add_to_server, grpc_servicer,
grpc_stub_cls, grpc_interceptors -> grpc_aio_stub): a real grpc.aio server and channel on
localhost, no database. Calls are signed as a partner's SDK signs them (client/signing.py),
at the fake clock's time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from client.signing import PrivateSigningKey, generate_key, public_key_b64, sign_headers
from customers.v1 import customers_pb2, customers_pb2_grpc, resources_pb2
from server.adapters.signing_keys import parse_submitted_key
from server.transport.customers import CustomerServicer
from tests.fakes.idempotency import FakeIdempotencyKeys
from tests.fakes.world import FakeWorld, fake_world

SERVICE = "/customers.v1.CustomerService/"
AUTHORITY = "localhost:8080"  # the fake settings' public URL


@pytest.fixture
async def world() -> AsyncIterator[FakeWorld]:
    # The real key parser and signature verifier: the signatures below are real ones.
    made = await fake_world(parse_key=parse_submitted_key, idempotency=FakeIdempotencyKeys())
    try:
        yield made
    finally:
        await made.container.close()


@pytest.fixture
def grpc_add_to_server() -> Callable[[Any, Any], None]:
    return customers_pb2_grpc.add_CustomerServiceServicer_to_server


@pytest.fixture
def grpc_servicer(world: FakeWorld) -> CustomerServicer:
    """The servicer bootstrap wired, not one made here."""
    return next(
        r.servicer for r in world.container.servicers if isinstance(r.servicer, CustomerServicer)
    )


@pytest.fixture
def grpc_interceptors(world: FakeWorld) -> list[grpc.aio.ServerInterceptor]:
    return world.container.interceptors


@pytest.fixture
def grpc_stub_cls() -> type[customers_pb2_grpc.CustomerServiceStub]:
    return customers_pb2_grpc.CustomerServiceStub


@dataclass
class Caller:
    world: FakeWorld
    token: str
    key: PrivateSigningKey

    def metadata(
        self, method: str, request: Any, *, key: uuid.UUID | None = None, signed: bool = True
    ) -> tuple[tuple[str, str], ...]:
        headers = {"authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["idempotency-key"] = str(key)
        if signed:
            added = sign_headers(
                self.key,
                method="POST",
                authority=AUTHORITY,
                path=SERVICE + method,
                query="",
                headers=headers,
                body=request.SerializeToString(),
                now=int(self.world.clock.now().timestamp()),
                nonce=uuid.uuid4().hex,
            )
            headers.update({name.lower(): value for name, value in added.items()})
        return tuple(headers.items())


@pytest.fixture
async def caller(world: FakeWorld) -> Caller:
    auth = world.container.auth
    made = await auth.create_partner("in-process")
    token = await auth.issue_token(api_key=str(made.api_key), api_secret=made.api_secret)
    key = generate_key()
    await world.container.signing_keys.register(
        partner_id=made.partner_id, public_key=public_key_b64(key)
    )
    return Caller(world, token.token, key)


def _reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError("no ErrorInfo in the status")


def _create(chain: str = "") -> customers_pb2.CreateCustomerRequest:
    chain = chain or f"eip155:1:0x{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
    return customers_pb2.CreateCustomerRequest(chain_id=chain, external_id=chain[-12:])


async def test_a_signed_create_answers_the_customer_and_its_key_replays_it(
    caller: Caller, grpc_aio_stub: Any
) -> None:
    request, key = _create(), uuid.uuid4()
    async with grpc_aio_stub() as stub:
        first = stub.CreateCustomer(
            request, metadata=caller.metadata("CreateCustomer", request, key=key)
        )
        created = await first
        again = stub.CreateCustomer(
            request, metadata=caller.metadata("CreateCustomer", request, key=key)
        )
        replayed = await again
        assert dict(await again.initial_metadata()).get("idempotent-replayed") == "true"
    assert created.status == resources_pb2.Customer.initiating
    assert replayed == created
    assert list(caller.world.uow.tables.customers) == [uuid.UUID(created.id)]


async def test_an_unsigned_call_is_unauthenticated_before_anything_runs(
    caller: Caller, grpc_aio_stub: Any
) -> None:
    request = _create()
    async with grpc_aio_stub() as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateCustomer(
                request,
                metadata=caller.metadata("CreateCustomer", request, key=uuid.uuid4(), signed=False),
            )
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert _reason(refused.value) == "SIGNATURE_MISSING"
    assert caller.world.uow.tables.customers == {}


async def test_a_modifying_call_without_an_idempotency_key_is_refused(
    caller: Caller, grpc_aio_stub: Any
) -> None:
    request = _create()
    async with grpc_aio_stub() as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateCustomer(request, metadata=caller.metadata("CreateCustomer", request))
    assert _reason(refused.value) == "IDEMPOTENCY_KEY_MISSING"
    assert caller.world.uow.tables.customers == {}


async def test_a_rule_of_the_use_case_reaches_the_caller_as_its_status_and_reason(
    caller: Caller, grpc_aio_stub: Any
) -> None:
    request = _create()
    async with grpc_aio_stub() as stub:
        created = await stub.CreateCustomer(
            request, metadata=caller.metadata("CreateCustomer", request, key=uuid.uuid4())
        )
        activate = customers_pb2.ActivateCustomerRequest(customer_id=created.id)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ActivateCustomer(
                activate, metadata=caller.metadata("ActivateCustomer", activate, key=uuid.uuid4())
            )
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert _reason(refused.value) == "INVALID_STATE_TRANSITION"
        get = customers_pb2.GetCustomerRequest(customer_id=str(uuid.uuid4()))
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetCustomer(get, metadata=caller.metadata("GetCustomer", get))
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND


def _handled(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "grpc_server_handled_total", {"method": SERVICE + method, "code": code}
    )
    return value or 0.0


async def test_a_refused_stream_is_counted_with_the_code_it_was_refused_with(
    caller: Caller, grpc_aio_stub: Any
) -> None:
    # A stream's checks run when its first message is asked for, after the outermost
    # interceptor's step has returned: it must still log and count the stream's real end.
    before_ok, before_refused = (
        _handled("WatchCustomers", "OK"),
        _handled("WatchCustomers", "UNAUTHENTICATED"),
    )
    request = customers_pb2.WatchCustomersRequest()
    async with grpc_aio_stub() as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stub.WatchCustomers(
                request, metadata=caller.metadata("WatchCustomers", request, signed=False)
            ):
                pass
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert _handled("WatchCustomers", "UNAUTHENTICATED") == before_refused + 1
    assert _handled("WatchCustomers", "OK") == before_ok
