"""Wrapping a grpc.aio method handler's behaviour without changing its arity.

Every interceptor here decorates *behaviour* (it runs inside the call, with the context at
hand, in the same contextvars context as the handler) rather than deciding in
`intercept_service`, so one shape serves unary and server-streaming methods alike.

Each interceptor wraps a method's handler once, the first time the method is called, and
hands out that same wrapped handler afterwards: per call, an interceptor costs a dict lookup
plus its own behaviour. A handler kind an interceptor cannot wrap (client or bidirectional
streaming; none of ours) is not passed through unwrapped, which would skip the interceptor's
checks: the method answers UNIMPLEMENTED instead (fail closed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from server.rpc.context import metadata, open_scope

# Server reflection is the one bidirectional-streaming service here: grpc's own code, public,
# with nothing to check. No interceptor applies to it (and none could wrap it).
REFLECTION = "/grpc.reflection."

# grpc.aio.ServicerContext; grpc ships no type hints, so it is Any to mypy either way.
Context = Any
# Runs around one call: gets the method name, the request, the context and the next step.
Around = Callable[[str, Any, Context, Callable[[], Awaitable[Any]]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request message whose bytes do not parse. The call still runs through
    the interceptors (so authentication answers first) and is refused as INVALID_ARGUMENT by
    interceptors/messages.py, instead of grpc's UNKNOWN "Unexpected DecodeError"."""

    problem: str


def capturing(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """The outermost deserializer: opens the call scope with the request's bytes as they
    arrived (the native Content-Digest covers exactly these). grpc.aio runs it in the call's
    own task, just before the behaviour."""

    def deserialize(raw: bytes) -> Any:
        open_scope().raw_request = raw
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except DecodeError as error:
            return Undecodable(str(error) or "not a valid protobuf message")

    return deserialize


def passing_bytes(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    """A response serializer that sends already-serialized bytes as they are (replays)."""

    def serialize(message: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        return serializer(message) if serializer else bytes(message)

    # Marked, so each interceptor layer does not wrap it again (handlers.wrap).
    serialize.passes_bytes = True  # type: ignore[attr-defined]
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
    `capture_request`: open the call scope with the request's raw bytes."""
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
        open_inner = _opener(handler.unary_stream)

        async def open_stream(request: Any, context: Context) -> AsyncIterator[Any]:
            # For a stream, `proceed` yields the message iterator: checks run before the
            # first message, and an interceptor may wrap the iterator (errors does).
            messages: AsyncIterator[Any] = await around(
                method, request, context, lambda: open_inner(request, context)
            )
            return messages

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            async for message in await open_stream(request, context):
                yield message

        # The next layer out opens this one's iterator instead of iterating this generator:
        # however many interceptors there are, a message passes one re-yield, not one per
        # layer (six generator frames per message under a 2,000-stream fan-out).
        stream.opens = open_stream  # type: ignore[attr-defined]
        # A stream may yield serialized messages (transport/customers.py StreamMessages:
        # one event's bytes for thousands of streams); a message is serialized as usual.
        serializer = handler.response_serializer
        return grpc.unary_stream_rpc_method_handler(
            stream,
            request_deserializer=deserializer,
            response_serializer=serializer
            if getattr(serializer, "passes_bytes", False)
            else passing_bytes(serializer),
        )
    return refusing(handler, method)


def _opener(
    behaviour: Callable[[Any, Context], AsyncIterator[Any]],
) -> Callable[[Any, Context], Awaitable[AsyncIterator[Any]]]:
    """How the layer outside opens a stream behaviour's messages: the servicer's generator
    as it is, or an inner layer's own opener (wrap's `opens`)."""
    opens = getattr(behaviour, "opens", None)
    if opens is not None:
        return opens  # type: ignore[no-any-return]

    async def start(request: Any, context: Context) -> AsyncIterator[Any]:
        return behaviour(request, context)

    return start


def refusing(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind that runs nothing and answers UNIMPLEMENTED."""

    async def refuse(request: Any, context: Context) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{method}: client- and bidirectional-streaming calls are not supported",
        )

    make = (
        grpc.stream_unary_rpc_method_handler
        if handler.stream_unary is not None
        else grpc.stream_stream_rpc_method_handler
    )
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class BehaviourInterceptor(grpc.aio.ServerInterceptor):
    """Base for interceptors that wrap behaviour; subclasses implement `around`."""

    raw_responses = False
    captures_request = False

    def __init__(self) -> None:
        # method -> the handler this interceptor hands out for it (wrapped, or passed through
        # when the interceptor does not apply). Only methods the server has end up here.
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        known = self._handlers.get(method)
        if known is not None:
            return known
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        if self.applies_to(method):
            handler = wrap(
                handler,
                method,
                self.around,
                raw_responses=self.raw_responses,
                capture_request=self.captures_request,
            )
        self._handlers[method] = handler
        return handler

    def applies_to(self, method: str) -> bool:
        return not method.startswith(REFLECTION)

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        raise NotImplementedError


__all__ = ["BehaviourInterceptor", "Context", "Undecodable", "metadata", "wrap"]
