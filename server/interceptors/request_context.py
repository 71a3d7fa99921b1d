"""Request id, one structured log line per call, and Prometheus metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog
from prometheus_client import Counter, Histogram

from server.interceptors.handlers import BehaviourInterceptor, Context, metadata
from server.transport import context as call

log = structlog.get_logger("server.calls")

CALLS = Counter("grpc_server_handled_total", "Calls handled", ["method", "code"])
LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to answer (to the first message for streams)",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def _code(context: Context, error: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if error is not None:
        return "INTERNAL" if not isinstance(error, grpc.aio.AbortError) else "ABORTED_BY_SERVER"
    return "OK"


class RequestContextInterceptor(BehaviourInterceptor):
    def applies_to(self, method: str) -> bool:
        return not method.startswith("/grpc.health.v1.Health/")

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        request_id = metadata(context, "x-request-id") or uuid.uuid4().hex
        call.request_id.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await proceed()
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            code = _code(context, error)
            CALLS.labels(method, code).inc()
            LATENCY.labels(method).observe(elapsed)
            log.info("call", code=code, ms=round(elapsed * 1000, 2))
            structlog.contextvars.clear_contextvars()
