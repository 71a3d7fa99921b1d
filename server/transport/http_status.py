"""The REST status a successful call answers with, told to the gateway in a header.

Envoy's transcoder can only say 200 for a success; its Lua filter (gateway/status.lua)
turns `x-http-status` into the contract's 201/202/204 (and the 409/422 that no gRPC code
maps to) and strips the header.
"""

from __future__ import annotations

import grpc

HEADER = "x-http-status"


async def answer_with(context: grpc.aio.ServicerContext, status: int) -> None:
    await context.send_initial_metadata(((HEADER, str(status)),))
