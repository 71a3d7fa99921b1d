"""Retention's one rule outside SQL (which rows go is store/retention.py, tested on both
databases in tests/integration/test_retention.py): the contract promises partners at least
30 days of events, so the setting refuses less."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.config import Settings


def test_events_are_kept_30_days_and_deliveries_7_unless_configured() -> None:
    settings = Settings()
    assert (settings.event_retention_days, settings.delivery_retention_days) == (30, 7)


def test_an_event_retention_shorter_than_the_promised_30_days_is_refused() -> None:
    with pytest.raises(ValidationError, match="event_retention_days"):
        Settings(event_retention_days=29)
    assert Settings(event_retention_days=30).event_retention_days == 30


def test_finished_deliveries_are_kept_at_least_a_day() -> None:
    with pytest.raises(ValidationError, match="delivery_retention_days"):
        Settings(delivery_retention_days=0)
