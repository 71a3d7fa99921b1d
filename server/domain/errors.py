"""Domain errors. Each has a stable UPPER_SNAKE `reason` and a `kind`; rpc/status.py
holds the one table from kind to gRPC code and HTTP status."""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    INVALID = "invalid"  # the request itself is wrong: 400
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not_found"  # 404
    ALREADY_EXISTS = "already_exists"  # 409
    CONFLICT = "conflict"  # the entity's state forbids it: 409
    IN_FLIGHT = "in_flight"  # the same request is still running: 409
    UNPROCESSABLE = "unprocessable"  # well-formed but cannot be honoured (key reuse): 422
    TOO_SLOW = "too_slow"  # a stream subscriber fell behind: 429
    LIMITED = "limited"  # a per-partner limit (rate, open streams) is reached: 429
    UNAVAILABLE = "unavailable"  # 503


class DomainError(Exception):
    """Base of every error a partner may see. The message is safe to show to them."""

    kind: ErrorKind = ErrorKind.INVALID
    reason: str = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}


class InvalidField(DomainError):
    """A field failed validation; `field` is its JSON name so partners know what to fix."""

    reason = "INVALID_FIELD"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, metadata={"field": field})
        self.field = field


class InvalidJson(InvalidField):
    """A REST request's JSON that proto3 parsing would take but the published contract does
    not allow (`null`, a bare value for a list, an enum number): the same reason as the
    gateway's own refusal of wrong JSON types, since to a partner it is the same mistake."""

    reason = "INVALID_REQUEST"


class MalformedRequest(DomainError):
    """The request message itself cannot be read (undecodable protobuf bytes)."""

    reason = "MALFORMED_REQUEST"


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND
    reason = "NOT_FOUND"


class CustomerNotFound(NotFound):
    reason = "CUSTOMER_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Customer not found")


class AccountNotFound(NotFound):
    reason = "ACCOUNT_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Account not found")


class CardNotFound(NotFound):
    reason = "CARD_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Card not found")


class CustomerAlreadyExists(DomainError):
    kind = ErrorKind.ALREADY_EXISTS
    reason = "CUSTOMER_ALREADY_EXISTS"

    def __init__(self, field: str) -> None:
        super().__init__("Customer already exists", metadata={"field": field})


class InvalidStateTransition(DomainError):
    """The entity's current state does not allow the action; the message names the state."""

    kind = ErrorKind.CONFLICT
    reason = "INVALID_STATE_TRANSITION"

    def __init__(self, entity: str, action: str, status: str) -> None:
        super().__init__(
            f"Cannot {action} {entity} in status '{status}'",
            metadata={"entity": entity, "status": status},
        )


class ChallengeAlreadySigned(DomainError):
    kind = ErrorKind.CONFLICT
    reason = "CHALLENGE_ALREADY_SIGNED"

    def __init__(self) -> None:
        super().__init__("Challenge already signed")


class ChallengeRejected(DomainError):
    """A signed challenge did not verify; a new challenge has been issued in its place."""

    reason = "CHALLENGE_REJECTED"


class ChallengeExpired(ChallengeRejected):
    reason = "CHALLENGE_EXPIRED"


class UnsupportedChain(DomainError):
    reason = "UNSUPPORTED_CHAIN"


class InvalidCredentials(DomainError):
    kind = ErrorKind.UNAUTHENTICATED
    reason = "INVALID_CREDENTIALS"

    def __init__(self) -> None:
        super().__init__("Invalid credentials")


class Unauthenticated(DomainError):
    kind = ErrorKind.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class SandboxOnly(DomainError):
    kind = ErrorKind.NOT_FOUND
    reason = "SANDBOX_ONLY"

    def __init__(self, what: str = "The simulator") -> None:
        super().__init__(f"{what} exists only in development mode")


class KycSessionNotFound(NotFound):
    reason = "KYC_SESSION_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("KYC session not found")


class InvalidCallbackSignature(DomainError):
    """A KYC partner callback whose signature is missing, stale or wrong: nothing is applied."""

    kind = ErrorKind.UNAUTHENTICATED
    reason = "INVALID_CALLBACK_SIGNATURE"


class KycPartnerUnavailable(DomainError):
    """The KYC partner's verdict did not reach the service; the person may try again."""

    kind = ErrorKind.UNAVAILABLE
    reason = "KYC_PARTNER_UNAVAILABLE"


class DatabaseUnavailable(DomainError):
    """The database could not be reached, or kept refusing the transaction (a deadlock or a
    lost connection, retried already): nothing of the call is known to have been kept; the
    same request may be sent again (with the same Idempotency-Key)."""

    kind = ErrorKind.UNAVAILABLE
    reason = "DATABASE_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("The database is unavailable; retry shortly")


class IdempotencyKeyMissing(DomainError):
    reason = "IDEMPOTENCY_KEY_MISSING"

    def __init__(self) -> None:
        super().__init__("Idempotency-Key header is required on modifying requests")


class IdempotencyKeyInvalid(DomainError):
    reason = "IDEMPOTENCY_KEY_INVALID"

    def __init__(self) -> None:
        super().__init__("Idempotency-Key must be a UUID")


class IdempotencyKeyReused(DomainError):
    kind = ErrorKind.UNPROCESSABLE
    reason = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self) -> None:
        super().__init__("Idempotency-Key was already used for a different request")


class IdempotencyKeyInFlight(DomainError):
    kind = ErrorKind.IN_FLIGHT
    reason = "IDEMPOTENCY_KEY_IN_FLIGHT"

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed; retry shortly"
        )


class RequestNotAuthenticated(DomainError):
    """A signature, digest or token check failed; `reason` names which (SIGNATURE_INVALID,
    DIGEST_MISMATCH, UNKNOWN_KEY, ...)."""

    kind = ErrorKind.UNAUTHENTICATED

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StreamLagging(DomainError):
    """A subscriber that cannot keep up is cut off (and told where to resume) rather than
    buffered without bound."""

    kind = ErrorKind.TOO_SLOW
    reason = "STREAM_LAGGING"

    def __init__(self, last_seq: int) -> None:
        super().__init__(
            f"Stream fell too far behind; reconnect with after={last_seq}",
            metadata={"resumeAfter": str(last_seq)},
        )


class CustomerSuspended(DomainError):
    """The programme operator suspended the customer: only the operator's reinstate lifts
    it. The message carries the operator's reason, so the partner can tell its user."""

    kind = ErrorKind.CONFLICT
    reason = "CUSTOMER_SUSPENDED"

    def __init__(self, suspension_reason: str) -> None:
        super().__init__(
            f"Customer is suspended by the programme operator: {suspension_reason}",
            metadata={"status": "inactive", "cause": "operator"},
        )


class ClientCertificateRequired(DomainError):
    """An internal method called without a verified client certificate (the plain port, the
    gateway socket, or a TLS port without one)."""

    kind = ErrorKind.UNAUTHENTICATED
    reason = "CLIENT_CERTIFICATE_REQUIRED"

    def __init__(self) -> None:
        super().__init__(
            "This method is for internal services: call it over the mTLS port with a client"
            " certificate that names a service principal"
        )


class PrincipalNotAllowed(DomainError):
    """A verified caller that is not a service principal with the method's role."""

    kind = ErrorKind.FORBIDDEN
    reason = "PRINCIPAL_NOT_ALLOWED"
