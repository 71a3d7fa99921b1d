"""The programme operator's actions on customers, and their audit record."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from server.domain.errors import InvalidField

REASON_MAX = 500


class OperatorAction(enum.StrEnum):
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class OperatorActionRecord:
    """Who did what to which customer, when and why: one row per action that changed it."""

    principal: str  # the service principal's name
    action: OperatorAction
    reason: str
    entity: str  # "customer"
    entity_id: UUID
    partner_id: UUID
    at: datetime


def validate_reason(reason: str) -> str:
    """Every operator action says why, in words a support engineer (and, for a suspension,
    the partner) can read."""
    text = reason.strip()
    if not text:
        raise InvalidField("reason", "reason is required")
    if len(text) > REASON_MAX or not text.isprintable():
        raise InvalidField("reason", f"reason must be 1-{REASON_MAX} printable characters")
    return text
