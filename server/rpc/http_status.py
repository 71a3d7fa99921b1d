"""The REST status a successful call answers with, told to the gateway in a header.

Envoy's transcoder can only say 200 for a success; its Lua filter (gateway/status.lua)
turns `x-http-status` into the contract's 201/202/204 (and the 409/422 that no gRPC code
maps to) and strips the header.
"""

from __future__ import annotations

from typing import Any

from server.rpc.context import current

STATUS_HEADER = "x-http-status"
REPLAYED_HEADER = "idempotent-replayed"


async def answer_with(context: Any, status: int) -> None:
    """`context` is a grpc.aio.ServicerContext (grpc ships no type hints). The status is
    also kept in the call scope, for the idempotency step to store with the answer."""
    scope = current()
    scope.answered_status = status
    if not scope.holds_status:
        await context.send_initial_metadata(((STATUS_HEADER, str(status)),))
