"""Opens the call scope: request id, one access log line per call, Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from server.interceptors.handlers import BehaviourInterceptor, Context
from server.logging import AccessLog
from server.rpc.context import CallScope, current, metadata_dict

CALLS = Counter("grpc_server_handled_total", "Calls handled", ["method", "code"])
LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to answer (to the first message for streams)",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
HEALTH = "/grpc.health.v1.Health/"


def _code(context: Context, error: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"  # the client went away (a watch stream's usual end)
    if error is not None:
        return "INTERNAL" if not isinstance(error, grpc.aio.AbortError) else "ABORTED_BY_SERVER"
    return "OK"


class RequestContextInterceptor(BehaviourInterceptor):
    # Outermost, so its deserializer is the one that runs first and opens the call scope
    # with the request's raw bytes (interceptors/handlers.py).
    captures_request = True

    def __init__(self, access_log: AccessLog) -> None:
        super().__init__()
        self._log = access_log
        # Labelled metric children, made once per method / (method, code).
        self._latency: dict[str, Any] = {}
        self._calls: dict[tuple[str, str], Any] = {}

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        scope = current()
        scope.method = method
        scope.headers = headers = metadata_dict(context)
        scope.request_id = headers.get("x-request-id") or uuid.uuid4().hex
        if method.startswith(HEALTH):  # Envoy probes every few seconds: no log line
            return await proceed()
        started = time.perf_counter()
        try:
            result = await proceed()
        except BaseException as error:
            self._finish(scope, context, error, started, None)
            raise
        if isinstance(result, AsyncIterator):
            # A stream's checks (auth and the rest, inner interceptors) run when its first
            # message is asked for, not in `proceed`: the call is logged and counted when
            # the stream ends, with the code it ended with.
            return self._logged(result, scope, context, started)
        self._finish(scope, context, None, started, None)
        return result

    async def _logged(
        self,
        messages: AsyncIterator[Any],
        scope: CallScope,
        context: Context,
        started: float,
    ) -> AsyncIterator[Any]:
        first: float | None = None
        try:
            async for message in messages:
                if first is None:
                    first = time.perf_counter()
                yield message
        except BaseException as error:
            self._finish(scope, context, error, started, first)
            raise
        self._finish(scope, context, None, started, first)

    def _finish(
        self,
        scope: CallScope,
        context: Context,
        error: BaseException | None,
        started: float,
        answered: float | None,
    ) -> None:
        """`answered`: when the first message went out (a stream), else now. The access log
        gives the whole call's time; the latency histogram the time to answer."""
        now = time.perf_counter()
        code = _code(context, error)
        self._count(scope.method, code, (answered or now) - started)
        self._log.call(
            request_id=scope.request_id,
            method=scope.method,
            code=code,
            ms=round((now - started) * 1000, 2),
            principal=scope.principal,
        )

    def _count(self, method: str, code: str, elapsed: float) -> None:
        calls = self._calls.get((method, code))
        if calls is None:
            calls = self._calls[(method, code)] = CALLS.labels(method, code)
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = LATENCY.labels(method)
        calls.inc()
        latency.observe(elapsed)
