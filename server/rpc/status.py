"""The one table from domain error kinds to gRPC codes and REST statuses, and the
google.rpc.Status (with ErrorInfo) every error carries."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.domain.errors import DomainError, ErrorKind, InvalidField
from server.domain.limits import POLICY_NAME, Quota, RateLimited

ERROR_DOMAIN = "customers.v1"

# kind -> (gRPC code, HTTP status the contract wants over REST)
TABLE: dict[ErrorKind, tuple[grpc.StatusCode, int]] = {
    ErrorKind.INVALID: (grpc.StatusCode.INVALID_ARGUMENT, 400),
    ErrorKind.UNAUTHENTICATED: (grpc.StatusCode.UNAUTHENTICATED, 401),
    ErrorKind.FORBIDDEN: (grpc.StatusCode.PERMISSION_DENIED, 403),
    ErrorKind.NOT_FOUND: (grpc.StatusCode.NOT_FOUND, 404),
    ErrorKind.ALREADY_EXISTS: (grpc.StatusCode.ALREADY_EXISTS, 409),
    ErrorKind.CONFLICT: (grpc.StatusCode.FAILED_PRECONDITION, 409),
    ErrorKind.IN_FLIGHT: (grpc.StatusCode.ABORTED, 409),
    ErrorKind.UNPROCESSABLE: (grpc.StatusCode.FAILED_PRECONDITION, 422),
    ErrorKind.TOO_SLOW: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    ErrorKind.LIMITED: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    ErrorKind.UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, 503),
}

# What Envoy's transcoder answers for each gRPC code on its own (convert_grpc_status).
TRANSCODER_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def for_error(error: DomainError) -> tuple[grpc.Status, int | None]:
    """The status to abort with, and the REST status to force when the transcoder's own
    mapping of the gRPC code would differ from the contract."""
    proto, override = error_status(error)
    return rpc_status.to_status(proto), override


def http_status_of(error: DomainError) -> int:
    return TABLE[error.kind][1]


def error_status(error: DomainError) -> tuple[status_pb2.Status, int | None]:
    """The google.rpc.Status for an error, and its REST status override (or None)."""
    code, http = TABLE[error.kind]
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    details = [_pack(info)]
    if isinstance(error, InvalidField):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=error.field, description=error.message
        )
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    proto = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    override = http if TRANSCODER_HTTP.get(code) != http else None
    return proto, override


def response_headers(error: DomainError) -> tuple[tuple[str, str], ...]:
    """What an error answer carries besides its status, as initial metadata: gRPC clients
    read it there, and the transcoder turns it into HTTP headers of the REST answer
    (trailing metadata it drops)."""
    if isinstance(error, RateLimited) and error.quota is not None:
        return rate_limit_headers(error.quota, remaining=0, reset=error.retry_after)
    return ()


def rate_limit_headers(quota: Quota, *, remaining: int, reset: int) -> tuple[tuple[str, str], ...]:
    """`Retry-After` (RFC 9110) and the IETF RateLimit fields
    (draft-ietf-httpapi-ratelimit-headers): the policy is `burst` requests per the time
    the bucket takes to fill (`q` per `w` seconds is the sustained rate); `t` is when the
    next request will be admitted, the bucket refilling continuously rather than per
    window."""
    return (
        ("retry-after", str(reset)),
        ("ratelimit-policy", f'"{POLICY_NAME}";q={quota.burst};w={quota.window}'),
        ("ratelimit", f'"{POLICY_NAME}";r={remaining};t={reset}'),
    )


def internal(request_id: str) -> grpc.Status:
    proto = status_pb2.Status(
        code=code_pb2.INTERNAL,
        message=f"Internal error; quote request id {request_id} to support",
        details=[_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN))],
    )
    return rpc_status.to_status(proto)
