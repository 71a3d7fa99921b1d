"""The REST status a successful call answers with, told to the gateway in a header.

Envoy's transcoder can only say 200 for a success; its Lua filter (gateway/status.lua)
turns `x-http-status` into the contract's 201/202/204 (and the 409/422 that no gRPC code
maps to) and strips the header.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

HEADER = "x-http-status"
REPLAYED_HEADER = "idempotent-replayed"

# What the handler answered with, for the idempotency interceptor to store with the body.
answered: ContextVar[int | None] = ContextVar("answered_http_status", default=None)


async def answer_with(context: Any, status: int) -> None:
    """`context` is a grpc.aio.ServicerContext (grpc ships no type hints)."""
    answered.set(status)
    await context.send_initial_metadata(((HEADER, str(status)),))
