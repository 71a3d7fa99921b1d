"""A request message whose bytes do not parse is refused as INVALID_ARGUMENT, after
authentication (so an unauthenticated caller learns nothing) and before anything runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.domain.errors import MalformedRequest
from server.interceptors.handlers import BehaviourInterceptor, Context, Undecodable


class MessagesInterceptor(BehaviourInterceptor):
    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        if isinstance(request, Undecodable):
            raise MalformedRequest(f"The request message is not valid protobuf: {request.problem}")
        return await proceed()
