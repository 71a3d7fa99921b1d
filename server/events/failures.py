"""How background loops report a round that failed: they all try again on the next round."""

from __future__ import annotations

from typing import Any

import structlog

from server.store import retry

log = structlog.get_logger("server.events")


def round_failed(what: str, error: BaseException, **fields: Any) -> None:
    """Call from the `except` block. A lost database connection is expected while
    PostgreSQL restarts or an operator cuts connections: one warning line per round, not a
    traceback per loop. Anything else is a bug and keeps its traceback."""
    if retry.is_disconnect(error):
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        log.warning(f"{what}: database unavailable", error=first_line, **fields)
    else:
        log.exception(what, **fields)
