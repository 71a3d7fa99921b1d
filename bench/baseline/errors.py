"""Error answers in the service's shape (a google.rpc.Status as JSON with an ErrorInfo), so
a client sees the same body from either implementation."""

from __future__ import annotations

import json
from typing import Any

DOMAIN = "customers.v1"
# HTTP status -> google.rpc.Code, for the answers these two endpoints can give.
_CODES = {400: 3, 401: 16, 404: 5, 409: 6, 422: 9}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        code: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.code = _CODES[status] if code is None else code
        self.metadata = metadata or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": DOMAIN,
                    "metadata": self.metadata,
                }
            ],
        }

    def json_bytes(self) -> bytes:
        return json.dumps(self.body(), separators=(",", ":")).encode()


def unauthenticated(reason: str, message: str) -> ApiError:
    return ApiError(401, reason, message)
