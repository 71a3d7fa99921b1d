"""The verifier behind Envoy's ext_authz filter: sees each REST request exactly as the
client sent it (method, Host, raw path and query, headers, raw body bytes), checks token,
signature and Content-Digest, and either denies with a google.rpc.Status JSON body or lets
it through with an attestation the server's authentication interceptor accepts."""

from __future__ import annotations

import hmac
import json
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as pb
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2

from server.adapters.attestation import HEADER as ATTESTATION
from server.adapters.attestation import Attestor
from server.adapters.http_signatures import SignedRequest
from server.domain.errors import DomainError
from server.services.ports import Clock
from server.transport.context import metadata
from server.transport.request_auth import RequestAuthenticator
from server.transport.status import ERROR_DOMAIN, TABLE

# REST paths that need no token or signature: getting a token, and the sandbox KYC
# partner's portal and callbacks (the callback carries the KYC partner's own HMAC).
PUBLIC_PATHS = ("/auth/token",)
PUBLIC_PREFIXES = ("/kyc/",)
FIRST_KEY_PATH = "/auth/signing"
GATEWAY_KEY_HEADER = "x-gateway-key"


def _route_path(raw_path: str) -> str:
    path = raw_path.split("?", 1)[0]
    return path[3:] if path.startswith("/v1/") else path


def is_public(method: str, raw_path: str) -> bool:
    path = _route_path(raw_path)
    return (method == "POST" and path in PUBLIC_PATHS) or path.startswith(PUBLIC_PREFIXES)


def _authority(host: str) -> str:
    """@authority: lower-case, without the default port of plain HTTP (Envoy's listener)."""
    host = host.lower()
    return host[:-3] if host.endswith(":80") else host


def _denied(error: DomainError) -> pb.CheckResponse:
    http = TABLE[error.kind][1]
    body = {
        "code": TABLE[error.kind][0].value[0],
        "message": error.message,
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": error.reason,
                "domain": ERROR_DOMAIN,
                "metadata": error.metadata,
            }
        ],
    }
    header = base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key="content-type", value="application/json")
    )
    return pb.CheckResponse(
        status={"code": code_pb2.UNAUTHENTICATED},
        denied_response=pb.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http),
            headers=[header],
            body=json.dumps(body, separators=(",", ":")),
        ),
    )


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):
    def __init__(
        self,
        *,
        authenticator: RequestAuthenticator,
        attestor: Attestor,
        clock: Clock,
        gateway_key: str,
    ) -> None:
        self._authenticator = authenticator
        self._attestor = attestor
        self._clock = clock
        self._gateway_key = gateway_key

    async def Check(self, request: pb.CheckRequest, context: Any) -> pb.CheckResponse:
        # Only the gateway may ask: an attestation for a replayed request would otherwise
        # let a gRPC caller run any method as the request's partner.
        presented = metadata(context, GATEWAY_KEY_HEADER) or ""
        if not hmac.compare_digest(presented, self._gateway_key):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not the gateway")
        http = request.attributes.request.http
        if is_public(http.method, http.path):
            # Nothing to vouch for; and no client may smuggle an attestation through.
            return pb.CheckResponse(
                status={"code": code_pb2.OK},
                ok_response=pb.OkHttpResponse(headers_to_remove=[ATTESTATION]),
            )
        path, _, query = http.path.partition("?")
        signed = SignedRequest(
            method=http.method,
            authority=_authority(http.host),
            path=path,
            query=query,
            headers=dict(http.headers),
            body=http.raw_body or None,
        )
        try:
            who = await self._authenticator.authenticate(
                signed,
                scheme="http",
                first_key_registration=http.method == "PUT"
                and _route_path(http.path) == FIRST_KEY_PATH,
            )
        except DomainError as error:
            return _denied(error)
        attestation = self._attestor.issue(
            request_id=http.headers.get("x-request-id", ""),
            partner_id=who.partner_id,
            key_id=who.key_id,
            now=int(self._clock.now().timestamp()),
        )
        overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
        return pb.CheckResponse(
            status={"code": code_pb2.OK},
            ok_response=pb.OkHttpResponse(
                headers=[
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key=ATTESTATION, value=attestation),
                        append_action=overwrite,
                    )
                ]
            ),
        )
