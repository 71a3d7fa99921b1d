"""Every ErrorInfo reason a REST caller can get, with its HTTP status, read from the server
and gateway themselves rather than listed again here:

- the domain errors (every DomainError subclass under server/domain) through the server's
  one error table (server/rpc/status.py TABLE: kind -> gRPC code, HTTP status);
- the signature and digest checks' reasons (server/services/ports.py REASONS), all 401;
- Envoy's own rejections (gateway/config.py LOCAL_REPLY_CODES).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import server.domain
from gateway.config import LOCAL_REPLY_CODES
from server.domain.errors import DomainError, RequestNotAuthenticated, Unauthenticated
from server.rpc.status import TABLE
from server.services.ports import REASONS as SIGNATURE_REASONS


@dataclass(frozen=True, slots=True)
class Reason:
    reason: str
    http_status: int
    grpc_code: int
    message: str  # an example message ("" when the server words it per case)
    source: str  # where it comes from: a domain error class, "signature", "gateway"


def catalogue() -> dict[str, Reason]:
    """reason -> Reason. Raises ValueError if one reason would answer two statuses."""
    found: dict[str, Reason] = {}
    for module in pkgutil.iter_modules(server.domain.__path__, "server.domain."):
        importlib.import_module(module.name)
    for cls in _subclasses(DomainError):
        if cls is RequestNotAuthenticated:
            continue  # its reason is per instance: SIGNATURE_REASONS below
        code, status = TABLE[cls.kind]
        _add(found, Reason(cls.reason, status, code.value[0], _message(cls), cls.__name__))
    code, status = TABLE[Unauthenticated.kind]
    for reason in sorted(SIGNATURE_REASONS):
        _add(found, Reason(reason, status, code.value[0], "", "signature"))
    for status, (grpc_code, reason) in sorted(LOCAL_REPLY_CODES.items()):
        if reason not in found:
            _add(found, Reason(reason, status, grpc_code, "", "gateway"))
    return found


def _subclasses(cls: type[DomainError]) -> list[type[DomainError]]:
    every: list[type[DomainError]] = []
    for sub in cls.__subclasses__():
        every.append(sub)
        every.extend(_subclasses(sub))
    return every


def _message(cls: type[DomainError]) -> str:
    """The fixed message of errors built without arguments ("Customer not found")."""
    try:
        return cls().message  # type: ignore[call-arg]
    except TypeError:
        return ""


def _add(found: dict[str, Reason], reason: Reason) -> None:
    known = found.get(reason.reason)
    if known is not None and known.http_status != reason.http_status:
        raise ValueError(
            f"{reason.reason}: {known.source} answers {known.http_status}, "
            f"{reason.source} {reason.http_status}"
        )
    if known is None:
        found[reason.reason] = reason
