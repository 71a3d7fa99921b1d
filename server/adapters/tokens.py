"""Bearer tokens as HS256 JWTs signed with a key every replica shares (from the store)."""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID

import jwt

from server.domain.errors import Unauthenticated
from server.services.ports import TokenClaims

ISSUER = "customers"
# Tokens whose signature this process already verified. A partner sends the same token on
# every request for up to an hour, and PyJWT's decode (base64, JSON, HMAC, claim checks)
# cost ~5 % of a signed GET's CPU. A token's claims cannot change, so remembering them by
# the exact token string is safe; expiry is still checked on every call, and revocation is
# the credentials version, checked by the caller.
VERIFIED_TOKENS = 4096


class JwtTokens:
    def __init__(self, secret: str, *, remember: int = VERIFIED_TOKENS) -> None:
        self._secret = secret
        self._remember = remember
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()

    def encode(self, claims: TokenClaims) -> str:
        payload = {
            "iss": ISSUER,
            "sub": str(claims.partner_id),
            "ver": claims.credentials_version,
            "exp": claims.expires_at,
        }
        return jwt.encode(payload, self._secret, algorithm="HS256")

    def decode(self, token: str, *, now: int) -> TokenClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            self._verified[token] = claims
            if len(self._verified) > self._remember:
                self._verified.popitem(last=False)
        if claims.expires_at <= now:
            raise Unauthenticated("Bearer token expired; request a new one")
        return claims

    def _verify(self, token: str) -> TokenClaims:
        try:
            # Expiry is checked against the injected clock below, not the wall clock.
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"verify_exp": False, "require": ["sub", "exp", "ver"]},
            )
            return TokenClaims(UUID(payload["sub"]), int(payload["ver"]), int(payload["exp"]))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Unauthenticated("Invalid bearer token") from None
