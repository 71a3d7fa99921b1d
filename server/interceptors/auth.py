"""Bearer-token authentication: every method but the public ones needs a partner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.domain.errors import Unauthenticated
from server.interceptors.handlers import BehaviourInterceptor, Context, metadata
from server.services.auth import AuthService
from server.transport.context import set_partner

# Methods callable without a token: getting one, and the infrastructure services.
PUBLIC_PREFIXES = (
    "/customers.v1.AuthService/CreateToken",
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
)


class AuthInterceptor(BehaviourInterceptor):
    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    def applies_to(self, method: str) -> bool:
        return not method.startswith(PUBLIC_PREFIXES)

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        header = metadata(context, "authorization")
        if not header:
            raise Unauthenticated("Missing Authorization header (Bearer token)")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        set_partner(await self._auth.authenticate(token.strip()))
        return await proceed()
