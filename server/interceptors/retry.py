"""Runs a non-idempotent unary call again after a deadlock or a lost database connection,
when that is safe: none of its transactions reached COMMIT (reads never do). Modifying
calls are retried by the idempotency interceptor instead, whose claim commits with the
change, so a retry after an unknown commit replays the stored answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from server.interceptors.handlers import BehaviourInterceptor, Context
from server.store import retry

log = structlog.get_logger(__name__)


async def run_again(
    method: str, proceed: Callable[[], Awaitable[Any]], *, always: bool = False
) -> Any:
    """`proceed()` up to retry.ATTEMPTS times on a retryable database error; `always`: even
    when a commit was under way (the caller knows a rerun cannot apply the change twice)."""
    for number in range(1, retry.ATTEMPTS + 1):
        attempt = retry.begin_attempt()
        try:
            return await proceed()
        except Exception as error:
            safe = always or not attempt.committing
            if number == retry.ATTEMPTS or not safe or not retry.is_retryable(error):
                raise
            log.info("database retry", method=method, attempt=number, error=repr(error))
        await asyncio.sleep(retry.BACKOFF * number)
    raise AssertionError("unreachable")


class RetryInterceptor(BehaviourInterceptor):
    def __init__(self, idempotent: frozenset[str]) -> None:
        super().__init__()
        self._idempotent = idempotent

    def applies_to(self, method: str) -> bool:
        return super().applies_to(method) and method not in self._idempotent

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        return await run_again(method, proceed)
