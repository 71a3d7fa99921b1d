"""Bearer-token authentication: every method but the public ones needs a partner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.domain.errors import Unauthenticated
from server.interceptors.handlers import BehaviourInterceptor, Context, metadata
from server.services.auth import AuthService
from server.transport.context import set_partner

# Methods callable without a token: getting one, the infrastructure services, and the KYC
# partner's side. The sandbox portal is reached through a customer's verificationUrl (the
# unguessable session id is the capability); KYC callbacks come from the partner, not from a
# partner of ours, and are authenticated by their HMAC signature instead (services/kyc.py).
PUBLIC_PREFIXES = (
    "/customers.v1.AuthService/CreateToken",
    "/customers.v1.KycPortalService/GetPortalPage",
    "/customers.v1.KycPortalService/SubmitDecision",
    "/customers.v1.KycCallbackService/ReceiveCallback",
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
