"""The customer and its onboarding state machine.

initiating -(challenge signed)-> screening -(screening passed)-> verifying -(KYC approved)->
active <-> inactive. Screening or KYC failure -> rejected, which is final.

The programme operator may also suspend an active customer (inactive, cause operator; only
its reinstate lifts it, not the partner's activate) and reject any customer not rejected yet.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from server.domain.errors import CustomerSuspended, InvalidStateTransition
from server.domain.lifecycle import StatusChanged


class CustomerStatus(enum.StrEnum):
    INITIATING = "initiating"
    SCREENING = "screening"
    VERIFYING = "verifying"
    ACTIVE = "active"
    INACTIVE = "inactive"
    REJECTED = "rejected"


class KycVerdict(enum.StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass
class Customer:
    id: UUID
    partner_id: UUID
    external_id: str
    chain_id: str  # CAIP-10, EIP-55 address form for eip155
    chain_key: str  # the uniqueness key: chain id with the address lower-cased
    status: CustomerStatus
    created_at: datetime
    updated_at: datetime
    kyc_session_id: str | None = None
    # The current EIP-4361 ownership challenge (plain text) and when it stops being valid.
    challenge_message: str = ""
    challenge_expires_at: datetime | None = None
    # A verdict that arrived before the customer reached `verifying` waits here.
    kyc_verdict: KycVerdict | None = None
    # Set while an operator suspension stands: the operator's reason.
    suspension_reason: str | None = None
    changes: list[StatusChanged] = field(default_factory=list, repr=False, compare=False)

    def _move(self, to: CustomerStatus, cause: str, now: datetime) -> None:
        self.changes.append(
            StatusChanged("customer", self.id, self.status.value, to.value, cause, now)
        )
        self.status = to
        self.updated_at = now

    def _require(self, action: str, *allowed: CustomerStatus) -> None:
        if self.status not in allowed:
            raise InvalidStateTransition("customer", action, self.status.value)

    def ownership_proven(self, now: datetime) -> None:
        self._require("verify the ownership of", CustomerStatus.INITIATING)
        self._move(CustomerStatus.SCREENING, "wallet ownership challenge signed", now)

    def screening_finished(self, passed: bool, now: datetime) -> None:
        self._require("screen", CustomerStatus.SCREENING)
        if not passed:
            self._move(CustomerStatus.REJECTED, "wallet screening failed", now)
            return
        self._move(CustomerStatus.VERIFYING, "wallet screening passed", now)
        self._apply_kyc_verdict(now)

    def record_kyc_verdict(self, verdict: KycVerdict, now: datetime) -> bool:
        """Keeps the verdict; it takes effect once the customer is `verifying`. Before that
        the latest verdict wins, and the same verdict again changes nothing (partners resend).
        Returns whether anything changed."""
        if self.status in (CustomerStatus.INITIATING, CustomerStatus.SCREENING):
            if verdict is self.kyc_verdict:
                return False
            self.kyc_verdict = verdict
            self.updated_at = now
            return True
        if self.status is CustomerStatus.VERIFYING:
            self.kyc_verdict = verdict
            self._apply_kyc_verdict(now)
            return True
        raise InvalidStateTransition("customer", "record a KYC verdict for", self.status.value)

    def _apply_kyc_verdict(self, now: datetime) -> None:
        if self.kyc_verdict is KycVerdict.APPROVED:
            self._move(CustomerStatus.ACTIVE, "KYC approved", now)
        elif self.kyc_verdict is KycVerdict.REJECTED:
            self._move(CustomerStatus.REJECTED, "KYC rejected", now)

    def deactivate(self, now: datetime) -> bool:
        """Returns whether anything changed: deactivating an inactive customer is a no-op."""
        if self.status is CustomerStatus.INACTIVE:
            return False
        self._require("deactivate", CustomerStatus.ACTIVE)
        self._move(CustomerStatus.INACTIVE, "deactivated by the partner", now)
        return True

    def activate(self, now: datetime) -> bool:
        """Returns whether anything changed: activating an active customer is a no-op. An
        operator suspension is not the partner's to lift."""
        if self.suspension_reason is not None:
            raise CustomerSuspended(self.suspension_reason)
        if self.status is CustomerStatus.ACTIVE:
            return False
        self._require("activate", CustomerStatus.INACTIVE)
        self._move(CustomerStatus.ACTIVE, "reactivated by the partner", now)
        return True

    def suspend(self, reason: str, now: datetime) -> bool:
        """Operator suspension of an active customer. A no-op (False) while one stands."""
        if self.suspension_reason is not None:
            return False
        self._require("suspend", CustomerStatus.ACTIVE)
        self._move(CustomerStatus.INACTIVE, "suspended by the operator", now)
        self.suspension_reason = reason
        return True

    def reinstate(self, now: datetime) -> None:
        """Lifts the operator's suspension; nothing else is the operator's to undo."""
        if self.suspension_reason is None:
            raise InvalidStateTransition("customer", "reinstate (not suspended)", self.status.value)
        self._move(CustomerStatus.ACTIVE, "reinstated by the operator", now)
        self.suspension_reason = None

    def reject_by_operator(self, now: datetime) -> None:
        """Final, from any state but rejected (evidence from monitoring)."""
        if self.status is CustomerStatus.REJECTED:
            raise InvalidStateTransition("customer", "reject", self.status.value)
        self._move(CustomerStatus.REJECTED, "rejected by the operator", now)
        self.suspension_reason = None

    def challenge_is_current(self, now: datetime) -> bool:
        return self.challenge_expires_at is not None and now < self.challenge_expires_at

    def replace_challenge(self, message: str, expires_at: datetime, now: datetime) -> None:
        self.challenge_message = message
        self.challenge_expires_at = expires_at
        self.updated_at = now

    @property
    def awaits_kyc_verdict(self) -> bool:
        """Whether a KYC verdict can still matter. Past `verifying` (or rejected at screening)
        it cannot: a late or repeated partner callback is then acknowledged and ignored."""
        return self.status in (
            CustomerStatus.INITIATING,
            CustomerStatus.SCREENING,
            CustomerStatus.VERIFYING,
        )

    @property
    def ownership_proven_already(self) -> bool:
        return self.status is not CustomerStatus.INITIATING

    @property
    def is_active(self) -> bool:
        return self.status is CustomerStatus.ACTIVE
