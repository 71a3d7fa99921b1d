"""Idempotency-Key on every modifying method: run once, store the answer, replay it.

Replays are exact: the stored bytes of the response message (or google.rpc.Status) and the
REST status go back as they were, marked `idempotent-replayed: true`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import structlog
from google.rpc import status_pb2
from grpc_status import rpc_status

from server.domain.errors import (
    DomainError,
    IdempotencyKeyInFlight,
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
)
from server.domain.idempotency import Decision
from server.interceptors.handlers import BehaviourInterceptor, Context
from server.interceptors.retry import run_again
from server.rpc import http_status, status
from server.rpc.context import current, partner
from server.services.ports import Clock
from server.store.idempotency import (
    ClaimSettled,
    IdempotencyKeys,
    IdempotentCall,
    Outcome,
    StoredAnswer,
    Ticket,
)

IDEMPOTENCY_KEY_HEADER = "idempotency-key"

log = structlog.get_logger(__name__)


def _key(context: Context) -> UUID:
    raw = current().headers.get(IDEMPOTENCY_KEY_HEADER)
    if not raw:
        raise IdempotencyKeyMissing()
    try:
        return UUID(raw)
    except ValueError:
        raise IdempotencyKeyInvalid() from None


def fingerprint(method: str, request: Any) -> str:
    """Same method + same request message = same request. Over REST the message holds the
    path parameters and the body, so this is "same method, path and body"."""
    body: bytes = request.SerializeToString(deterministic=True)
    return hashlib.sha256(method.encode() + b"\n" + body).hexdigest()


class IdempotencyInterceptor(BehaviourInterceptor):
    """The entrypoint of every modifying call, and the owner of its one write transaction:
    looks the key up, runs the handler inside the call's IdempotentWrite, and commits the
    handler's changes together with the answer (store/idempotency.py)."""

    raw_responses = True  # replays return the stored bytes

    def __init__(self, store: IdempotencyKeys, clock: Clock, methods: frozenset[str]) -> None:
        super().__init__()
        self._store = store
        self._clock = clock
        self._methods = methods

    def applies_to(self, method: str) -> bool:
        return method in self._methods

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        ticket = Ticket(partner(), _key(context), fingerprint(method, request), self._clock.now())
        # A deadlock or a lost connection rolls the whole call back, claim included; if the
        # commit itself was lost, the rerun's lookup or claim finds the stored answer.
        return await run_again(method, lambda: self._once(ticket, context, proceed), always=True)

    async def _once(
        self, ticket: Ticket, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        known = await self._store.lookup(ticket)
        if not known.runs:
            return await _settled(context, known)
        write = self._store.write(ticket)
        scope = current()
        scope.answered_status = None
        scope.holds_status = True
        refused: DomainError | None = None
        try:
            with write.bound():
                response = await proceed()
            answer = StoredAnswer(0, scope.answered_status, response.SerializeToString())
        except ClaimSettled as settled:
            await write.abort()
            return await _settled(context, settled.outcome)
        except DomainError as error:
            if status.http_status_of(error) >= 500:
                await _abort(write)
                raise
            proto, override = status.error_status(error)
            answer, refused = StoredAnswer(proto.code, override, proto.SerializeToString()), error
        except BaseException:
            # A server error (or a cancelled call): everything rolls back, claim included,
            # and a retry runs again.
            await _abort(write)
            raise
        try:
            await write.complete(answer)
        except ClaimSettled as settled:
            # A duplicate finished first while this one changed nothing: its answer is the
            # key's answer.
            return await _settled(context, settled.outcome)
        if refused is not None:
            raise refused
        if scope.answered_status is not None:
            headers = ((http_status.STATUS_HEADER, str(scope.answered_status)),)
            await context.send_initial_metadata(headers)
        return response


async def _abort(write: IdempotentCall) -> None:
    """Rolls the call back; a failure to (a dead connection) must not hide the call's own
    error, and the transaction ends with the connection anyway."""
    try:
        await write.abort()
    except Exception as error:  # noqa: BLE001
        log.warning("rollback failed", error=repr(error))


async def _settled(context: Context, outcome: Outcome) -> Any:
    """A key that already holds something: replay it, or say why the call cannot run."""
    if outcome.decision is Decision.REUSED:
        raise IdempotencyKeyReused()
    if outcome.decision is Decision.IN_FLIGHT:
        raise IdempotencyKeyInFlight()
    assert outcome.decision is Decision.REPLAY and outcome.answer is not None
    return await _replay(context, outcome.answer)


async def _replay(context: Context, answer: StoredAnswer) -> Any:
    headers = [(http_status.REPLAYED_HEADER, "true")]
    if answer.http_status is not None:
        headers.append((http_status.STATUS_HEADER, str(answer.http_status)))
    await context.send_initial_metadata(tuple(headers))
    if answer.grpc_code == 0:
        return answer.body
    await context.abort_with_status(rpc_status.to_status(status_pb2.Status.FromString(answer.body)))
