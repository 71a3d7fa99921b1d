"""Error mapping: domain errors become google.rpc.Status with ErrorInfo; anything else
becomes INTERNAL with the request id, never a traceback on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from server.domain.errors import DatabaseUnavailable, DomainError
from server.interceptors.handlers import BehaviourInterceptor, Context
from server.rpc import status
from server.rpc.context import request_id
from server.rpc.http_status import STATUS_HEADER
from server.store.retry import is_retryable

log = structlog.get_logger(__name__)


async def _abort(context: Context, error: BaseException) -> None:
    if is_retryable(error):
        # Retried already where safe (interceptors/retry.py): a 503 the client may retry.
        log.warning("database unavailable", error=repr(error), request_id=request_id())
        error = DatabaseUnavailable()
    if isinstance(error, DomainError):
        rich, http = status.for_error(error)
        headers = status.response_headers(error)
        if headers and http is None:
            # Once headers are sent the answer is no longer trailers-only: through the
            # transcoder a refused stream would start as a 200 event stream without it.
            http = status.http_status_of(error)
        if http is not None:
            headers = ((STATUS_HEADER, str(http)), *headers)
        if headers:
            # Only possible before the first response message: errors come before that.
            await context.send_initial_metadata(headers)
        await context.abort_with_status(rich)
    log.exception("unhandled error", exc_info=error, request_id=request_id())
    await context.abort_with_status(status.internal(request_id()))


class ErrorsInterceptor(BehaviourInterceptor):
    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        try:
            result = await proceed()
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort(context, error)
            raise  # unreachable: abort raises
        if isinstance(result, AsyncIterator):
            return self._guarded(result, context)
        return result

    @staticmethod
    async def _guarded(messages: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        try:
            async for message in messages:
                yield message
        except grpc.aio.AbortError:
            raise
        except Exception as error:  # noqa: BLE001
            await _abort(context, error)
