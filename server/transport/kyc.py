"""KycPortalService (the sandbox partner's pages) and KycCallbackService over gRPC.

Both are public (no bearer token). The portal exists only with the sandbox partner in
development; the callback is authenticated by the configured provider's signature check.
"""

from __future__ import annotations

import grpc
from google.api import httpbody_pb2
from google.protobuf import empty_pb2

from customers.v1 import kyc_pb2, kyc_pb2_grpc
from server.adapters.kyc import SandboxKyc
from server.domain.errors import SandboxOnly
from server.rpc.context import metadata_dict
from server.services.kyc import KycService

HTML = "text/html; charset=utf-8"
# The pages load nothing and post only back to themselves.
_PAGE_HEADERS = (
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    ),
    ("cache-control", "no-store"),
)


class KycPortalServicer(kyc_pb2_grpc.KycPortalServiceServicer):
    def __init__(self, portal: SandboxKyc | None, kyc: KycService) -> None:
        self._portal = portal
        self._kyc = kyc

    def _sandbox(self) -> SandboxKyc:
        if self._portal is None:
            raise SandboxOnly("The sandbox KYC portal")
        return self._portal

    async def GetPortalPage(
        self, request: kyc_pb2.GetPortalPageRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        portal = self._sandbox()
        await self._kyc.require_session(request.session_id)
        await context.send_initial_metadata(_PAGE_HEADERS)
        return httpbody_pb2.HttpBody(content_type=HTML, data=portal.portal_page(request.session_id))

    async def SubmitDecision(
        self, request: kyc_pb2.SubmitDecisionRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        portal = self._sandbox()
        await self._kyc.require_session(request.session_id)
        page = await portal.decide(request.session_id, request.form.data)
        await context.send_initial_metadata(_PAGE_HEADERS)
        return httpbody_pb2.HttpBody(content_type=HTML, data=page)


class KycCallbackServicer(kyc_pb2_grpc.KycCallbackServiceServicer):
    def __init__(self, kyc: KycService) -> None:
        self._kyc = kyc

    async def ReceiveCallback(
        self, request: httpbody_pb2.HttpBody, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        # Every HTTP header reaches us as metadata (lower-case); the body's content type
        # travels in the HttpBody, since the gRPC call's own is application/grpc.
        headers = metadata_dict(context)
        headers["content-type"] = request.content_type
        await self._kyc.receive_callback(body=request.data, headers=headers)
        return empty_pb2.Empty()
