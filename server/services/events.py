"""Catch-up reads of the partner's change events."""

from __future__ import annotations

from uuid import UUID

from server.domain.errors import InvalidField
from server.domain.events import ChangeEvent, EventType
from server.services.paging import Page, decode_seq, encode_seq
from server.services.ports import UnitOfWorkFactory

DEFAULT_PAGE = 100
MAX_PAGE = 1_000


def parse_type_filter(values: list[str]) -> list[EventType]:
    """The feed's `types` filter: `types=a&types=b` and `types=a,b` both work, repeats are
    ignored. (A webhook subscription's list is stricter: domain/webhooks.parse_types.)"""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    try:
        return list(dict.fromkeys(EventType(name) for name in names))
    except ValueError:
        allowed = ", ".join(t.value for t in EventType)
        raise InvalidField("types", f"types must be among: {allowed}") from None


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
        start = decode_seq(token) if token else after
        async with self._uow() as uow:
            rows = await uow.events.after(
                partner_id=partner_id, seq=start, limit=limit + 1, types=parse_type_filter(types)
            )
        return Page.of(rows, limit, lambda e: encode_seq(e.seq))
