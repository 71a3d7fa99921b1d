"""Per-call facts the interceptors establish and handlers read: one ContextVar each."""

from __future__ import annotations

from contextvars import ContextVar
from uuid import UUID

request_id: ContextVar[str] = ContextVar("request_id", default="-")
_partner_id: ContextVar[UUID | None] = ContextVar("partner_id", default=None)


def set_partner(partner_id: UUID) -> None:
    _partner_id.set(partner_id)


def partner() -> UUID:
    """The authenticated partner. Only public methods run without one, and they never ask."""
    value = _partner_id.get()
    if value is None:
        raise RuntimeError("no authenticated partner in this call")
    return value
