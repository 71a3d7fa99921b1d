"""The one per-call scope the interceptors establish and handlers read.

The outermost interceptor opens a `CallScope` for every call (in the call's own contextvars
context, so concurrent calls never see each other's); later steps fill it in: the raw request
bytes (the deserializer), the authenticated partner (auth), the REST status a handler chose
(`http_status.answer_with`), which the idempotency step stores with the answer.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID


@dataclass(slots=True)
class CallScope:
    method: str = ""
    request_id: str = "-"
    headers: dict[str, str] = field(default_factory=dict)  # text metadata, read once
    raw_request: bytes | None = None  # the request message's bytes as they arrived
    partner_id: UUID | None = None  # set only once token and signature verified
    principal: str | None = None  # an internal service's name, once its certificate passed
    answered_status: int | None = None  # REST status the handler answered with (201, ...)
    # Set by the idempotency step: it sends that status itself once the answer is settled
    # (a call run again after a lost commit must not have sent headers already).
    holds_status: bool = False


_scope: ContextVar[CallScope | None] = ContextVar("call_scope", default=None)


def open_scope() -> CallScope:
    """A fresh scope for this call (the deserializer, which runs first, opens it)."""
    scope = CallScope()
    _scope.set(scope)
    return scope


def current() -> CallScope:
    """This call's scope; a call outside any scope (a test calling a servicer directly) gets
    an empty one of its own."""
    scope = _scope.get()
    return scope if scope is not None else open_scope()


def request_id() -> str:
    scope = _scope.get()
    return scope.request_id if scope is not None else "-"


def set_partner(partner_id: UUID) -> None:
    current().partner_id = partner_id


def partner() -> UUID:
    """The authenticated partner. Only public methods run without one, and they never ask."""
    scope = _scope.get()
    if scope is None or scope.partner_id is None:
        raise RuntimeError("no authenticated partner in this call")
    return scope.partner_id


def principal() -> str:
    """The authorized service principal of an internal method (see interceptors/auth.py)."""
    scope = _scope.get()
    if scope is None or scope.principal is None:
        raise RuntimeError("no authorized service principal in this call")
    return scope.principal


def metadata(context: Any, key: str) -> str | None:
    """One text metadata value of a grpc.aio call (`context`: grpc.aio.ServicerContext)."""
    for item in context.invocation_metadata() or ():
        if item.key == key:
            value = item.value
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def metadata_dict(context: Any) -> dict[str, str]:
    """Every text metadata value, by lower-case name (a repeated name: the last one)."""
    return {
        item.key: item.value
        for item in context.invocation_metadata() or ()
        if isinstance(item.value, str)
    }
