"""A clock tests move by hand, so expiry is tested without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SteppingClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        # Time moves a little on every reading, as a real clock's does.
        self._now += timedelta(microseconds=1)
        return self._now

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)
