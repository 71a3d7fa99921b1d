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


def encode_cursor(created_at: datetime, entity_id: UUID) -> str:
    raw = f"{created_at.isoformat()}|{entity_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> PageCursor | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, entity_id = raw.split("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        return PageCursor(created_at=created_at, id=UUID(entity_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidField("pageToken", "pageToken is not one this service issued") from None


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
