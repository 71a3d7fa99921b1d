"""The gateway attestation: the verifier behind Envoy's ext_authz vouches for a REST request
it checked, and the server accepts the transcoded call on that word alone.

HMAC-SHA256 under a server-held secret, bound to Envoy's request id (which Envoy generates,
overwriting any client value) and a short lifetime. A caller on the gRPC port cannot make
one, and a captured one is useless for any other request id.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from uuid import UUID

HEADER = "x-customers-attestation"
LIFETIME_SECONDS = 30
_VERSION = "v1"


@dataclass(frozen=True)
class Attested:
    partner_id: UUID
    key_id: str  # "-" when the first key was registered with the token alone


class InvalidAttestation(ValueError):
    pass


class Attestor:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _mac(self, request_id: str, partner_id: str, key_id: str, issued_at: int) -> str:
        text = f"{_VERSION}|{request_id}|{partner_id}|{key_id}|{issued_at}".encode()
        return hmac.new(self._secret, text, hashlib.sha256).hexdigest()

    def issue(self, *, request_id: str, partner_id: UUID, key_id: str, now: int) -> str:
        mac = self._mac(request_id, str(partner_id), key_id, now)
        return f"{_VERSION}.{partner_id}.{key_id}.{now}.{mac}"

    def check(self, value: str, *, request_id: str, now: int) -> Attested:
        try:
            version, partner_id, key_id, issued, mac = value.split(".")
            issued_at = int(issued)
            partner = UUID(partner_id)
        except ValueError:
            raise InvalidAttestation("malformed gateway attestation") from None
        expected = self._mac(request_id, partner_id, key_id, issued_at)
        if version != _VERSION or not hmac.compare_digest(mac, expected):
            raise InvalidAttestation("gateway attestation does not verify")
        if not (now - LIFETIME_SECONDS <= issued_at <= now + 5):
            raise InvalidAttestation("gateway attestation expired")
        return Attested(partner, key_id)
