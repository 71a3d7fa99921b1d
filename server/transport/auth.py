"""AuthService over gRPC: tokens, secret rotation, signing keys."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2

from customers.v1 import auth_pb2 as pb
from customers.v1 import auth_pb2_grpc
from server.domain.signing_keys import SigningKey
from server.rpc.context import partner
from server.rpc.http_status import answer_with
from server.services.auth import AuthService
from server.services.signing_keys import SigningKeyService
from server.transport.convert import timestamp


def _key(key: SigningKey) -> pb.SigningKey:
    return pb.SigningKey(
        key_id=key.key_id, algorithm=key.algorithm, created_at=timestamp(key.created_at)
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService, keys: SigningKeyService) -> None:
        self._service = service
        self._keys = keys

    async def CreateToken(self, request: pb.CreateTokenRequest, context: Any) -> pb.Token:
        issued = await self._service.issue_token(
            api_key=request.api_key, api_secret=request.api_secret
        )
        return pb.Token(token=issued.token, expires_at=issued.expires_at, token_type="Bearer")

    async def RotateCredentials(
        self, request: pb.RotateCredentialsRequest, context: Any
    ) -> pb.Credentials:
        rotated = await self._service.rotate_credentials(partner_id=partner())
        return pb.Credentials(api_key=str(rotated.api_key), api_secret=rotated.api_secret)

    async def RegisterSigningKey(
        self, request: pb.RegisterSigningKeyRequest, context: Any
    ) -> pb.SigningKey:
        registered = await self._keys.register(partner_id=partner(), public_key=request.public_key)
        if registered.created:
            await answer_with(context, 201)
        return _key(registered.key)

    async def ListSigningKeys(
        self, request: pb.ListSigningKeysRequest, context: Any
    ) -> pb.ListSigningKeysResponse:
        keys = await self._keys.live(partner_id=partner())
        return pb.ListSigningKeysResponse(keys=[_key(k) for k in keys])

    async def DeleteSigningKey(
        self, request: pb.DeleteSigningKeyRequest, context: Any
    ) -> empty_pb2.Empty:
        await self._keys.delete(partner_id=partner(), key_id=request.key_id)
        await answer_with(context, 204)
        return empty_pb2.Empty()
