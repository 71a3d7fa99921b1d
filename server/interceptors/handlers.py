"""Wrapping a grpc.aio method handler's behaviour without changing its arity.

Every interceptor here decorates *behaviour* (it runs inside the call, with the context at
hand, in the same contextvars context as the handler) rather than deciding in
`intercept_service`, so one shape serves unary and server-streaming methods alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc

from server.transport.context import metadata

# grpc.aio.ServicerContext; grpc ships no type hints, so it is Any to mypy either way.
Context = Any
# Runs around one call: gets the method name, the request, the context and the next step.
Around = Callable[[str, Any, Context, Callable[[], Awaitable[Any]]], Awaitable[Any]]


# The request's bytes as they arrived, for checks that must see exactly what the client sent
# (the native gRPC Content-Digest). Set by the deserializer, which grpc.aio runs in the
# call's own task just before the behaviour.
raw_request: ContextVar[bytes | None] = ContextVar("raw_request", default=None)


def capturing(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def deserialize(raw: bytes) -> Any:
        raw_request.set(raw)
        return deserializer(raw) if deserializer else raw

    return deserialize


def passing_bytes(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    """A response serializer that sends already-serialized bytes as they are (replays)."""

    def serialize(message: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        return serializer(message) if serializer else bytes(message)

    return serialize


def wrap(
    handler: grpc.RpcMethodHandler,
    method: str,
    around: Around,
    *,
    raw_responses: bool = False,
    capture_request: bool = False,
) -> grpc.RpcMethodHandler:
    """`raw_responses`: the behaviour may return serialized bytes instead of a message.
    `capture_request`: keep the request's raw bytes in `raw_request`."""
    deserializer = handler.request_deserializer
    if capture_request:
        deserializer = capturing(deserializer)
    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary(request: Any, context: Context) -> Any:
            return await around(method, request, context, lambda: inner(request, context))

        serializer = handler.response_serializer
        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=deserializer,
            response_serializer=passing_bytes(serializer) if raw_responses else serializer,
        )
    if handler.unary_stream is not None:
        inner_stream = handler.unary_stream

        async def start(request: Any, context: Context) -> AsyncIterator[Any]:
            return inner_stream(request, context)  # type: ignore[no-any-return]

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            # For a stream, `proceed` yields the message iterator: checks run before the
            # first message, and an interceptor may wrap the iterator (errors does).
            messages = await around(method, request, context, lambda: start(request, context))
            async for message in messages:
                yield message

        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler  # client/bidi streaming: none of ours


class BehaviourInterceptor(grpc.aio.ServerInterceptor):
    """Base for interceptors that wrap behaviour; subclasses implement `around`."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not self.applies_to(handler_call_details.method):
            return handler
        return wrap(
            handler,
            handler_call_details.method,
            self.around,
            raw_responses=self.raw_responses,
            capture_request=self.captures_request,
        )

    raw_responses = False
    captures_request = False

    def applies_to(self, method: str) -> bool:
        return True

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        raise NotImplementedError


__all__ = ["BehaviourInterceptor", "Context", "metadata", "raw_request", "wrap"]
