"""Idempotency keys for modifying calls: a fresh UUID per logical request.

A retry of the same logical request must reuse its key; these helpers add a key only when
the caller did not pass one, so a caller that retries passes its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc

IDEMPOTENCY_KEY_HEADER = "idempotency-key"
MODIFYING_HTTP_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def new_key() -> str:
    return str(uuid.uuid4())


def _with_key(metadata: Any) -> tuple[tuple[str, str], ...]:
    items = tuple(metadata or ())
    if any(key == IDEMPOTENCY_KEY_HEADER for key, _ in items):
        return items
    return (*items, (IDEMPOTENCY_KEY_HEADER, new_key()))


class IdempotencyKeyInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds an Idempotency-Key to every unary call that has none (the server ignores it on
    reads). Put it before a signing interceptor so the key is signed too."""

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        details = client_call_details._replace(metadata=_with_key(client_call_details.metadata))
        return await continuation(details, request)
