"""Per-call facts the interceptors establish and handlers read: one ContextVar each."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
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


def metadata(context: Any, key: str) -> str | None:
    """One text metadata value of a grpc.aio call (`context`: grpc.aio.ServicerContext)."""
    for item in context.invocation_metadata() or ():
        if item.key == key:
            value = item.value
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
