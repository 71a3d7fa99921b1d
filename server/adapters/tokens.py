"""Bearer tokens as HS256 JWTs signed with a key every replica shares (from the store)."""

from __future__ import annotations

from uuid import UUID

import jwt

from server.domain.errors import Unauthenticated
from server.services.ports import TokenClaims

ISSUER = "customers"


class JwtTokens:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def encode(self, claims: TokenClaims) -> str:
        payload = {
            "iss": ISSUER,
            "sub": str(claims.partner_id),
            "ver": claims.credentials_version,
            "exp": claims.expires_at,
        }
        return jwt.encode(payload, self._secret, algorithm="HS256")

    def decode(self, token: str, *, now: int) -> TokenClaims:
        try:
            # Expiry is checked against the injected clock below, not the wall clock.
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"verify_exp": False, "require": ["sub", "exp", "ver"]},
            )
            claims = TokenClaims(UUID(payload["sub"]), int(payload["ver"]), int(payload["exp"]))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Unauthenticated("Invalid bearer token") from None
        if claims.expires_at <= now:
            raise Unauthenticated("Bearer token expired; request a new one")
        return claims
