"""Sandbox KYC partner: opens a session whose portal page lives under the public URL."""

from __future__ import annotations

import secrets
from uuid import UUID

from server.services.ports import KycSession


class SandboxKyc:
    def __init__(self, public_url: str) -> None:
        self._public_url = public_url

    async def open_session(self, *, partner_id: UUID, customer_id: UUID) -> KycSession:
        session_id = secrets.token_urlsafe(18)
        return KycSession(session_id, f"{self._public_url}/kyc/{session_id}")
