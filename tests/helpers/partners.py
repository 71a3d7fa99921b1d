"""Partners for tests, made through the same use case the operator CLI runs."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from server.bootstrap import build
from server.config import Settings


@dataclass(frozen=True)
class PartnerCredentials:
    partner_id: str
    api_key: str
    api_secret: str


def create_partner(database_url: str, name: str | None = None) -> PartnerCredentials:
    async def create() -> PartnerCredentials:
        container = await build(Settings(database_url=database_url, metrics_port=0))
        try:
            made = await container.auth.create_partner(name or f"partner-{uuid.uuid4().hex[:8]}")
        finally:
            await container.close()
        return PartnerCredentials(str(made.partner_id), str(made.api_key), made.api_secret)

    return asyncio.run(create())
