"""Idempotency-Key on every modifying method: claim, run once, store the answer, replay it.

Replays are exact: the stored bytes of the response message (or google.rpc.Status) and the
REST status go back as they were, marked `idempotent-replayed: true`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

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
from server.services.ports import Clock
from server.store.claims import Claim, active_claim
from server.store.idempotency import IdempotencyStore, StoredAnswer
from server.transport import http_status, status
from server.transport.context import current, partner

HEADER = "idempotency-key"


def _key(context: Context) -> UUID:
    raw = current().headers.get(HEADER)
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
    raw_responses = True  # replays return the stored bytes

    def __init__(self, store: IdempotencyStore, clock: Clock, methods: frozenset[str]) -> None:
        super().__init__()
        self._store = store
        self._clock = clock
        self._methods = methods

    def applies_to(self, method: str) -> bool:
        return method in self._methods

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        key = _key(context)
        decision, outcome = await self._store.claim(
            partner_id=partner(),
            key=key,
            fingerprint=fingerprint(method, request),
            now=self._clock.now(),
        )
        if decision is Decision.REUSED:
            raise IdempotencyKeyReused()
        if decision is Decision.IN_FLIGHT:
            raise IdempotencyKeyInFlight()
        if isinstance(outcome, StoredAnswer):
            return await _replay(context, outcome)
        assert isinstance(outcome, Claim)
        return await self._run_once(outcome, proceed)

    async def _run_once(self, claim: Claim, proceed: Callable[[], Awaitable[Any]]) -> Any:
        scope = current()
        scope.answered_status = None
        try:
            response = await _with_claim(claim, proceed)
        except DomainError as error:
            if status.http_status_of(error) >= 500:
                await self._store.abandon(claim)
            else:
                proto, override = status.error_status(error)
                answer = StoredAnswer(proto.code, override, proto.SerializeToString())
                await self._store.complete(claim, answer)
            raise
        except BaseException:
            # A server error (or a cancelled call): the changes roll back, nothing is
            # stored, and a retry runs again.
            await self._store.abandon(claim)
            raise
        body = response.SerializeToString()
        await self._store.complete(claim, StoredAnswer(0, scope.answered_status, body))
        return response


async def _with_claim(claim: Claim, proceed: Callable[[], Awaitable[Any]]) -> Any:
    """Runs the handler with its claim visible to the unit of work, and only the handler:
    the store's own bookkeeping transactions must not mark anything committed."""
    token = active_claim.set(claim)
    try:
        return await proceed()
    finally:
        active_claim.reset(token)


async def _replay(context: Context, answer: StoredAnswer) -> Any:
    headers = [(http_status.REPLAYED_HEADER, "true")]
    if answer.http_status is not None:
        headers.append((http_status.HEADER, str(answer.http_status)))
    await context.send_initial_metadata(tuple(headers))
    if answer.grpc_code == 0:
        return answer.body
    await context.abort_with_status(rpc_status.to_status(status_pb2.Status.FromString(answer.body)))
