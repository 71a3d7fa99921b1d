"""The interceptor base: each method's handler is wrapped once, and a handler kind that
cannot be wrapped fails closed (UNIMPLEMENTED, the servicer never runs) instead of passing
through unchecked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from server.interceptors.handlers import BehaviourInterceptor, Context

UNARY = "/test.Echo/Unary"
BIDI = "/test.Echo/Bidi"


class Gate(BehaviourInterceptor):
    """Stands for the auth interceptor: refuses everything it applies to."""

    def __init__(self) -> None:
        super().__init__()
        self.checked: list[str] = []

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        self.checked.append(method)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no")


class Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def _identity(value: bytes) -> bytes:
    return value


async def test_a_method_handler_is_wrapped_once_and_reused() -> None:
    made: list[str] = []

    async def unary(request: bytes, context: Context) -> bytes:
        return request

    async def continuation(details: Any) -> grpc.RpcMethodHandler:
        made.append(details.method)
        return grpc.unary_unary_rpc_method_handler(unary, _identity, _identity)

    gate = Gate()
    first = await gate.intercept_service(continuation, Details(UNARY))
    second = await gate.intercept_service(continuation, Details(UNARY))
    assert first is second
    assert made == [UNARY]  # the inner chain was asked once


async def test_an_unknown_method_is_not_remembered() -> None:
    async def continuation(details: Any) -> None:
        return None

    gate = Gate()
    assert await gate.intercept_service(continuation, Details("/x.Y/Z")) is None
    assert gate._handlers == {}


@pytest.fixture
async def server_with_bidi() -> AsyncIterator[tuple[int, Gate, list[str]]]:
    ran: list[str] = []

    async def bidi(requests: Any, context: Context) -> AsyncIterator[bytes]:
        ran.append("bidi")
        async for request in requests:
            yield request

    async def unary(request: bytes, context: Context) -> bytes:
        ran.append("unary")
        return request

    handlers = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, _identity, _identity),
            "Unary": grpc.unary_unary_rpc_method_handler(unary, _identity, _identity),
        },
    )
    gate = Gate()
    server = grpc.aio.server(interceptors=[gate])
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port, gate, ran
    await server.stop(0)


async def test_a_bidi_method_fails_closed_and_its_servicer_never_runs(
    server_with_bidi: tuple[int, Gate, list[str]],
) -> None:
    port, gate, ran = server_with_bidi
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(BIDI, request_serializer=None, response_deserializer=None)

        async def requests() -> AsyncIterator[bytes]:
            yield b"hello"

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in call(requests()):
                pass
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # The control: a unary method is wrapped, so the gate runs (and refuses).
        unary = channel.unary_unary(UNARY, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await unary(b"hi")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ran == []
    assert gate.checked == [UNARY]


def test_the_access_log_writes_one_json_line_per_call() -> None:
    import io
    import json

    from server.logging import AccessLog, access_log

    stream = io.StringIO()
    AccessLog(stream).call(request_id="r-1", method=UNARY, code="OK", ms=1.5)
    line = json.loads(stream.getvalue())
    assert line["event"] == "call" and line["request_id"] == "r-1" and line["code"] == "OK"
    assert line["timestamp"].endswith("Z")
    assert access_log("INFO").enabled and not access_log("WARNING").enabled


class Layer(BehaviourInterceptor):
    """Records its turn; `tag` wraps the stream's iterator, as the errors interceptor does."""

    def __init__(self, name: str, seen: list[str], *, tag: bool = False) -> None:
        super().__init__()
        self._name, self._seen, self._tag = name, seen, tag

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        self._seen.append(self._name)
        messages = await proceed()
        return self._tagged(messages) if self._tag else messages

    async def _tagged(self, messages: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for message in messages:
            yield message + self._name.encode()


async def test_stacked_stream_layers_run_outermost_first_and_keep_their_wrappers() -> None:
    """The layers open one another's iterators (one re-yield for the whole chain); each
    one's checks still run in order before the first message, and a layer's iterator
    wrapper still sees every message."""
    seen: list[str] = []

    async def watch(request: bytes, context: Context) -> AsyncIterator[bytes]:
        seen.append("servicer")
        for message in (b"a", b"b"):
            yield message

    async def servicer(details: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_stream_rpc_method_handler(watch, _identity, _identity)

    chain = [Layer("1", seen), Layer("2", seen, tag=True), Layer("3", seen)]

    def continuation_at(index: int) -> Callable[[Any], Awaitable[grpc.RpcMethodHandler]]:
        if index == len(chain):
            return servicer
        return lambda details: chain[index].intercept_service(continuation_at(index + 1), details)

    handler = await continuation_at(0)(Details("/test.Echo/Watch"))
    messages = [m async for m in handler.unary_stream(b"", None)]
    assert messages == [b"a2", b"b2"]
    assert seen == ["1", "2", "3", "servicer"]
