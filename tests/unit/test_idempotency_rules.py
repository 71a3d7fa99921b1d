"""The order of the idempotency rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.domain.idempotency import Decision, RecordState, StoredRecord, decide

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(state: RecordState, *, lease: int = 30, expires: int = 3600) -> StoredRecord:
    return StoredRecord(
        "f", state, NOW + timedelta(seconds=lease), NOW + timedelta(seconds=expires)
    )


def test_no_record_or_an_expired_one_means_execute() -> None:
    assert decide(None, "f", NOW) is Decision.EXECUTE
    assert decide(record(RecordState.COMPLETED, expires=0), "f", NOW) is Decision.EXECUTE


def test_a_different_request_is_refused_before_in_flight_is_considered() -> None:
    assert decide(record(RecordState.IN_FLIGHT), "other", NOW) is Decision.REUSED


def test_completed_replays_and_running_waits() -> None:
    assert decide(record(RecordState.COMPLETED), "f", NOW) is Decision.REPLAY
    assert decide(record(RecordState.IN_FLIGHT), "f", NOW) is Decision.IN_FLIGHT


def test_an_abandoned_claim_is_taken_over_once_its_lease_ends() -> None:
    assert decide(record(RecordState.IN_FLIGHT, lease=0), "f", NOW) is Decision.TAKE_OVER
