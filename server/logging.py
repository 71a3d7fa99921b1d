"""structlog over stdlib logging, so library logs share the JSON lines and the request id."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

import structlog


def configure(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class AccessLog:
    """One JSON line per call, written straight to the stream.

    Why not structlog/stdlib `logging` here: their per-record machinery (processors, records,
    handler locks) cost ~11 % of a signed GET's server CPU under load. The line has the same
    shape as the other JSON logs (timestamp, level, event) and is skipped entirely when the
    level is above INFO.
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._stream = stream
        self.enabled = enabled

    def call(
        self, *, request_id: str, method: str, code: str, ms: float, principal: str | None = None
    ) -> None:
        """`principal`: the internal service that called (operator actions are traceable
        in the log as well as in the operator_actions table)."""
        if not self.enabled:
            return
        stream = self._stream or sys.stderr
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        line = _encode(
            {
                "event": "call",
                "level": "info",
                "timestamp": now,
                "request_id": request_id,
                "method": method,
                "code": code,
                "ms": ms,
                **({"principal": principal} if principal else {}),
            }
        )
        stream.write(line + "\n")
        stream.flush()


_encode = json.JSONEncoder(separators=(",", ":")).encode


def access_log(level: str) -> AccessLog:
    """The access log for a configured level (`CUSTOMERS_LOG_LEVEL`): JSON lines, also when
    the other logs are rendered for a console."""
    threshold = logging.getLevelName(level.upper())
    return AccessLog(enabled=isinstance(threshold, int) and threshold <= logging.INFO)
