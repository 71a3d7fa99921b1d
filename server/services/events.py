"""Catch-up reads of the partner's change events."""

from __future__ import annotations

import base64
import binascii
from uuid import UUID

from server.domain.errors import InvalidField
from server.domain.events import ChangeEvent, EventType
from server.services.paging import Page
from server.services.ports import UnitOfWorkFactory

DEFAULT_PAGE = 100
MAX_PAGE = 1_000


def parse_types(values: list[str]) -> list[EventType]:
    """`types=a&types=b` and `types=a,b` both work."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    try:
        return list(dict.fromkeys(EventType(name) for name in names))
    except ValueError:
        allowed = ", ".join(t.value for t in EventType)
        raise InvalidField("types", f"types must be among: {allowed}") from None


def _token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _after_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, seq = raw.split(":")
        if prefix != "seq":
            raise ValueError(prefix)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidField("pageToken", "pageToken is not one this service issued") from None


class EventService:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def list(
        self, *, partner_id: UUID, after: int, types: list[str], size: int, token: str
    ) -> Page[ChangeEvent]:
        if after < 0:
            raise InvalidField("after", "after must not be negative")
        if size < 0 or size > MAX_PAGE:
            raise InvalidField("pageSize", f"pageSize must be between 1 and {MAX_PAGE}")
        limit = size or DEFAULT_PAGE
        start = _after_token(token) if token else after
        async with self._uow() as uow:
            rows = await uow.events.after(
                partner_id=partner_id, seq=start, limit=limit + 1, types=parse_types(types)
            )
        return Page.of(rows, limit, lambda e: _token(e.seq))
