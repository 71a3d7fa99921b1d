"""Keyset pagination shared by every list: opaque page tokens over (created_at, id)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from server.domain.errors import InvalidField
from server.services.ports import PageCursor

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

T = TypeVar("T")


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidField("pageSize", "pageSize must not be negative")
    if requested > MAX_PAGE_SIZE:
        raise InvalidField("pageSize", f"pageSize must be at most {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


# One opaque codec for every page token: URL-safe base64 without padding over a short text
# (`created_at|id` for keyset lists, `seq:N` for the event feed). Anything that does not
# decode is a token this service did not issue.
_TOKEN_ERRORS = (ValueError, binascii.Error, UnicodeDecodeError)


def _wrap(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _unwrap(token: str) -> str:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def _not_issued() -> InvalidField:
    return InvalidField("pageToken", "pageToken is not one this service issued")


def encode_cursor(created_at: datetime, entity_id: UUID) -> str:
    return _wrap(f"{created_at.isoformat()}|{entity_id}")


def decode_cursor(token: str) -> PageCursor | None:
    if not token:
        return None
    try:
        stamp, entity_id = _unwrap(token).split("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        return PageCursor(created_at=created_at, id=UUID(entity_id))
    except _TOKEN_ERRORS:
        raise _not_issued() from None


def encode_seq(seq: int) -> str:
    return _wrap(f"seq:{seq}")


def decode_seq(token: str) -> int:
    try:
        prefix, seq = _unwrap(token).split(":")
        if prefix != "seq":
            raise ValueError(prefix)
        return int(seq)
    except _TOKEN_ERRORS:
        raise _not_issued() from None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str

    @classmethod
    def of(cls, rows: Sequence[T], limit: int, cursor: Callable[[T], str]) -> Page[T]:
        """`rows` holds up to limit+1 items; the extra one only says another page exists."""
        items = list(rows[:limit])
        more = len(rows) > limit
        return cls(items, cursor(items[-1]) if more and items else "")
