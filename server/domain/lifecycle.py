"""Shared pieces of every entity with a status: the audit record of a status change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class StatusChanged:
    """One transition, kept as an audit trail and published as an `*.updated` event."""

    entity: str  # "customer" | "account" | "card"
    entity_id: UUID
    from_status: str
    to_status: str
    cause: str  # why, in words a support engineer can read
    at: datetime
