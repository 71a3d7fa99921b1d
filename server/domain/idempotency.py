"""Idempotency rules: what a repeated `Idempotency-Key` gets, decided from the stored record.

Order matters (and is tested): an expired record is forgotten first; then a different
request under the same key is refused before "still in flight" is considered, so a client
that reuses keys wrongly learns so at once rather than after a retry loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

KEY_LIFETIME = timedelta(hours=1)
# A claim not completed within the lease (a crashed worker) may be taken over by a retry.
IN_FLIGHT_LEASE = timedelta(seconds=30)


class RecordState(enum.StrEnum):
    # Claimed by a call still running. Visible to others only as a held row lock: the claim
    # commits with the answer (store/idempotency.py). A committed in-flight row comes only
    # from an older server version, which claimed in a transaction of its own.
    IN_FLIGHT = "in_flight"
    COMPLETED = "completed"  # the response is stored and is replayed


@dataclass(frozen=True)
class StoredRecord:
    fingerprint: str
    state: RecordState
    lease_until: datetime
    expires_at: datetime


class Decision(enum.Enum):
    EXECUTE = "execute"  # no live record: claim it and run
    TAKE_OVER = "take_over"  # an abandoned claim: claim it again and run
    REPLAY = "replay"  # same request, finished: answer the stored response
    REUSED = "reused"  # same key, different request: 422
    IN_FLIGHT = "in_flight"  # same request still running: 409, retry later


def decide(record: StoredRecord | None, fingerprint: str, now: datetime) -> Decision:
    if record is None or record.expires_at <= now:
        return Decision.EXECUTE
    if record.fingerprint != fingerprint:
        return Decision.REUSED
    if record.state is RecordState.COMPLETED:
        return Decision.REPLAY
    if record.lease_until <= now:
        return Decision.TAKE_OVER
    return Decision.IN_FLIGHT
