"""Authentication: who is calling, proven by bearer token AND request signature.

REST calls were checked by the gateway's verifier (transport/authz.py), which attached an
attestation bound to Envoy's request id; native gRPC calls are checked here, with the
signature over the serialized request message. A direct caller cannot claim the gateway
checked it: the attestation is an HMAC only the server can make.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.adapters.attestation import HEADER as ATTESTATION
from server.adapters.attestation import Attestor, InvalidAttestation
from server.adapters.http_signatures import SignedRequest
from server.domain.errors import RequestNotAuthenticated
from server.interceptors.handlers import BehaviourInterceptor, Context, metadata, raw_request
from server.services.ports import Clock
from server.transport.context import set_partner
from server.transport.request_auth import RequestAuthenticator

# Methods callable without a token: getting one, the infrastructure services, and the KYC
# partner's side. The sandbox portal is reached through a customer's verificationUrl (the
# unguessable session id is the capability); KYC callbacks come from the partner, not from a
# partner of ours, and are authenticated by their HMAC signature instead (services/kyc.py).
PUBLIC_PREFIXES = (
    "/customers.v1.AuthService/CreateToken",
    "/customers.v1.KycPortalService/GetPortalPage",
    "/customers.v1.KycPortalService/SubmitDecision",
    "/customers.v1.KycCallbackService/ReceiveCallback",
    "/envoy.service.auth.v3.Authorization/Check",  # guarded by the gateway key instead
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
)


FIRST_KEY_METHOD = "/customers.v1.AuthService/RegisterSigningKey"


def _headers(context: Context) -> dict[str, str]:
    return {
        item.key: item.value
        for item in context.invocation_metadata() or ()
        if isinstance(item.value, str)
    }


class AuthInterceptor(BehaviourInterceptor):
    captures_request = True  # the native Content-Digest covers the bytes as received

    def __init__(
        self,
        *,
        authenticator: RequestAuthenticator,
        attestor: Attestor,
        clock: Clock,
        public_authority: str,
        public_scheme: str,
    ) -> None:
        self._authenticator = authenticator
        self._attestor = attestor
        self._clock = clock
        self._authority = public_authority
        self._scheme = public_scheme

    def applies_to(self, method: str) -> bool:
        return not method.startswith(PUBLIC_PREFIXES)

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        attestation = metadata(context, ATTESTATION)
        if attestation is not None:
            try:
                attested = self._attestor.check(
                    attestation,
                    request_id=metadata(context, "x-request-id") or "",
                    now=int(self._clock.now().timestamp()),
                )
            except InvalidAttestation as exc:
                raise RequestNotAuthenticated("ATTESTATION_INVALID", str(exc)) from None
            set_partner(attested.partner_id)
            return await proceed()
        body = raw_request.get()
        signed = SignedRequest(
            method="POST",
            authority=self._authority,
            path=method,
            query="",
            headers=_headers(context),
            body=body or None,
        )
        who = await self._authenticator.authenticate(
            signed, scheme=self._scheme, first_key_registration=method == FIRST_KEY_METHOD
        )
        set_partner(who.partner_id)
        return await proceed()
