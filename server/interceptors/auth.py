"""Authentication: who is calling, proven by bearer token AND request signature.

One check per call, in this process, for both doors (SPEC section 3):
- REST through Envoy: the call arrives over the gateway's own Unix socket, carrying what
  gateway/request.lua forwards about the request as the client sent it (method, Host, raw
  path and query, raw body). The signature and Content-Digest are verified against those.
- Native gRPC (the TCP port, or gRPC through Envoy): `@method` POST, `@path` the gRPC method
  path, `@authority` the public host, Content-Digest over the serialized request message.

A direct caller cannot claim to be the gateway: whether a call came over the gateway socket
is a property of the connection (`context.peer()` is "unix:"), not of anything it sends, and
the socket lives in a directory only the service's own user can enter. Forwarded headers on
a TCP call are ignored; a client's own `x-gateway-*` headers never survive request.lua.

Internal methods (a `(customers.v1.role)` in the proto) are the third door: the caller is a
service principal, proven by the client certificate a TLS handshake verified against
CUSTOMERS_GRPC_CLIENT_CA_FILE, whose URI or DNS SAN is listed in CUSTOMERS_INTERNAL_SERVICES
with the role. That handshake is Envoy's, on the public gRPC port, and the identity comes
over Envoy's own mTLS hop (peer_identity.py), or the worker's own, for a direct caller of
its internal port. No token, signature or client-written header counts there; a call
without a verified certificate (the gateway socket, the plain port, a partner on the public
gRPC port without one) is refused before anything runs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from server.domain.errors import (
    ClientCertificateRequired,
    PrincipalNotAllowed,
    RequestNotAuthenticated,
)
from server.domain.principals import Principals, Role, ServicePrincipal
from server.interceptors.handlers import BehaviourInterceptor, Context
from server.interceptors.peer_identity import caller_identities, peer_identities
from server.rpc.context import current
from server.rpc.policy import MethodPolicies
from server.services.authentication import RequestAuthenticator
from server.services.ports import SignedRequest

# What gateway/request.lua forwards with a REST call.
GATEWAY_METHOD = "x-gateway-method"
GATEWAY_AUTHORITY = "x-gateway-authority"
GATEWAY_TARGET = "x-gateway-target"
GATEWAY_BODY = "x-gateway-body"


def rest_authority(host: str) -> str:
    """@authority: lower-case, without the default port of plain HTTP (Envoy's listener)."""
    host = host.lower()
    return host[:-3] if host.endswith(":80") else host


def via_gateway(context: Context) -> bool:
    """The call came over a gateway Unix socket (see the module docstring)."""
    peer: str = context.peer() or ""
    return peer.startswith("unix:")


def authorize_principal(
    principals: Principals, identities: list[str], role: Role
) -> ServicePrincipal:
    """The service principal the caller's certificate (`identities`: its SANs) names, if it
    holds `role`."""
    if not identities:
        raise ClientCertificateRequired()
    principal = principals.find(identities)
    if principal is None:
        raise PrincipalNotAllowed("The client certificate names no internal service")
    if not principal.may(role):
        raise PrincipalNotAllowed(
            f"Service {principal.name!r} does not hold the role {role.value!r} this method needs"
        )
    return principal


def rest_request(headers: dict[str, str]) -> SignedRequest:
    """The REST request as the client sent it, from the gateway's forwarded headers."""
    path, _, query = headers.get(GATEWAY_TARGET, "").partition("?")
    encoded = headers.get(GATEWAY_BODY)
    try:
        body = base64.b64decode(encoded, validate=True) if encoded else None
    except (binascii.Error, ValueError):
        # Only the gateway writes this header; a broken one is refused, never guessed at.
        raise RequestNotAuthenticated("DIGEST_MISMATCH", "Request body was unreadable") from None
    return SignedRequest(
        method=headers[GATEWAY_METHOD],
        authority=rest_authority(headers.get(GATEWAY_AUTHORITY, "")),
        path=path,
        query=query,
        headers=headers,
        body=body,
    )


class AuthInterceptor(BehaviourInterceptor):
    def __init__(
        self,
        *,
        authenticator: RequestAuthenticator,
        policy: MethodPolicies,
        public_authority: str,
        public_scheme: str,
        principals: Principals | None = None,
        gateway_identity: str | None = None,
    ) -> None:
        super().__init__()
        self._principals = principals or Principals()
        # The SAN of Envoy's hop certificate: only its forwarded client identity counts.
        self._gateway = gateway_identity
        self._authenticator = authenticator
        self._policy = policy
        self._authority = public_authority
        self._scheme = public_scheme

    def applies_to(self, method: str) -> bool:
        """Every method but the public ones (the proto's access option, rpc/policy.py);
        one the server does not know is not public."""
        return not self._policy.is_public(method)

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        scope = current()
        role = self._policy.role(method)
        if role is not None:
            identities = (
                caller_identities(context, scope.headers, self._gateway)
                if self._gateway
                else peer_identities(context)
            )
            scope.principal = authorize_principal(self._principals, identities, role).name
            return await proceed()
        headers = scope.headers
        if GATEWAY_METHOD in headers and via_gateway(context):
            signed = rest_request(headers)
        else:
            signed = SignedRequest(
                method="POST",
                authority=self._authority,
                path=method,
                query="",
                headers=headers,
                body=scope.raw_request or None,
            )
        who = await self._authenticator.authenticate(
            signed,
            scheme=self._scheme,
            first_key_registration=self._policy.is_first_key(method),
        )
        scope.partner_id = who.partner_id
        return await proceed()
