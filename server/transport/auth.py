"""AuthService over gRPC: the one public method."""

from __future__ import annotations

import grpc

from customers.v1 import auth_pb2 as pb
from customers.v1 import auth_pb2_grpc
from server.services.auth import AuthService


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService) -> None:
        self._service = service

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.Token:
        issued = await self._service.issue_token(
            api_key=request.api_key, api_secret=request.api_secret
        )
        return pb.Token(token=issued.token, expires_at=issued.expires_at, token_type="Bearer")
