"""The customer state machine: onboarding transitions, KYC verdicts early and late, and
rejected being final."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from server.domain.customer import Customer, CustomerStatus, KycVerdict
from server.domain.errors import InvalidStateTransition

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = CustomerStatus


def customer(status: CustomerStatus = S.INITIATING) -> Customer:
    return Customer(
        id=uuid.uuid4(),
        partner_id=uuid.uuid4(),
        external_id="u-1",
        chain_id="eip155:1:0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb",
        chain_key="eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb",
        status=status,
        created_at=T0,
        updated_at=T0,
    )


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def to_verifying(c: Customer) -> None:
    c.ownership_proven(at(1))
    c.screening_finished(True, at(2))


def test_onboarding_walks_initiating_screening_verifying_active_with_an_audit_trail() -> None:
    c = customer()
    to_verifying(c)
    assert c.status is S.VERIFYING and c.awaits_kyc_verdict
    assert c.record_kyc_verdict(KycVerdict.APPROVED, at(3)) is True
    assert c.status is S.ACTIVE and not c.awaits_kyc_verdict
    assert [(x.from_status, x.to_status) for x in c.changes] == [
        ("initiating", "screening"),
        ("screening", "verifying"),
        ("verifying", "active"),
    ]
    assert c.updated_at == at(3)


def test_failed_screening_rejects_and_ignores_any_stored_verdict() -> None:
    c = customer()
    c.record_kyc_verdict(KycVerdict.APPROVED, at(1))
    c.ownership_proven(at(2))
    c.screening_finished(False, at(3))
    assert c.status is S.REJECTED
    assert not c.awaits_kyc_verdict


@pytest.mark.parametrize(
    ("verdict", "final"), [(KycVerdict.APPROVED, S.ACTIVE), (KycVerdict.REJECTED, S.REJECTED)]
)
def test_verdict_before_verifying_is_kept_and_applied_on_reaching_verifying(
    verdict: KycVerdict, final: CustomerStatus
) -> None:
    c = customer()
    assert c.record_kyc_verdict(verdict, at(1)) is True
    assert c.status is S.INITIATING and c.kyc_verdict is verdict and not c.changes
    c.ownership_proven(at(2))
    assert c.record_kyc_verdict(verdict, at(3)) is False  # a resend while screening
    assert c.status is S.SCREENING
    c.screening_finished(True, at(4))
    assert c.status is final
    assert c.changes[-1].to_status == final.value


def test_same_verdict_again_before_verifying_changes_nothing() -> None:
    c = customer()
    c.record_kyc_verdict(KycVerdict.APPROVED, at(1))
    assert c.record_kyc_verdict(KycVerdict.APPROVED, at(5)) is False
    assert c.updated_at == at(1) and not c.changes


def test_latest_verdict_before_verifying_wins() -> None:
    c = customer()
    c.record_kyc_verdict(KycVerdict.APPROVED, at(1))
    c.record_kyc_verdict(KycVerdict.REJECTED, at(2))
    to_verifying(c)
    assert c.status is S.REJECTED


def test_verdict_in_verifying_applies_at_once() -> None:
    c = customer()
    to_verifying(c)
    c.record_kyc_verdict(KycVerdict.REJECTED, at(3))
    assert c.status is S.REJECTED and c.changes[-1].cause == "KYC rejected"


@pytest.mark.parametrize("status", [S.ACTIVE, S.INACTIVE, S.REJECTED])
def test_once_kyc_is_decided_no_verdict_is_awaited_and_recording_one_is_a_conflict(
    status: CustomerStatus,
) -> None:
    c = customer(status)
    assert not c.awaits_kyc_verdict
    with pytest.raises(InvalidStateTransition) as raised:
        c.record_kyc_verdict(KycVerdict.APPROVED, at(1))
    assert status.value in raised.value.message
    assert c.status is status


def test_rejected_is_final() -> None:
    c = customer(S.REJECTED)
    for action in (c.activate, c.deactivate, c.ownership_proven):
        with pytest.raises(InvalidStateTransition):
            action(at(1))
    with pytest.raises(InvalidStateTransition):
        c.screening_finished(True, at(1))
    assert c.status is S.REJECTED and not c.changes


def test_active_and_inactive_toggle_and_repeats_are_no_ops() -> None:
    c = customer(S.ACTIVE)
    assert c.activate(at(1)) is False
    assert c.deactivate(at(2)) is True and c.status is S.INACTIVE
    assert c.deactivate(at(3)) is False
    assert c.activate(at(4)) is True and c.status is S.ACTIVE
    assert len(c.changes) == 2


@pytest.mark.parametrize("status", [S.INITIATING, S.SCREENING, S.VERIFYING])
def test_customers_still_onboarding_cannot_be_activated_or_deactivated(
    status: CustomerStatus,
) -> None:
    c = customer(status)
    for action in (c.activate, c.deactivate):
        with pytest.raises(InvalidStateTransition) as raised:
            action(at(1))
        assert status.value in raised.value.message


def test_ownership_is_proven_once() -> None:
    c = customer()
    assert not c.ownership_proven_already
    c.ownership_proven(at(1))
    assert c.ownership_proven_already
    with pytest.raises(InvalidStateTransition):
        c.ownership_proven(at(2))
