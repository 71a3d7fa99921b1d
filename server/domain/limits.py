"""Per-partner limits (SPEC section 14): the token bucket behind the request rate limit, and
the errors a partner over a limit gets.

No clock and no I/O here: callers pass the time (monotonic seconds), so tests move it by
hand, and taking a token costs a few float operations on the request path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from server.domain.errors import DomainError, ErrorKind

# The quota policy's name in the RateLimit-Policy / RateLimit headers.
POLICY_NAME = "default"


@dataclass(frozen=True, slots=True)
class Quota:
    """A partner's request quota: `per_second` tokens refill continuously, up to `burst`
    (what a partner idle for a while may send at once). One request takes one token."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a quota needs a positive rate and a burst of at least 1")

    @property
    def window(self) -> int:
        """Whole seconds an empty bucket takes to fill again: the `w` of RateLimit-Policy
        (`q` requests per `w` seconds is the sustained rate), at least 1."""
        return max(1, math.ceil(self.burst / self.per_second))


class TokenBucket:
    """One partner's bucket. Not thread-safe and needs no lock: the server runs every call
    on one event loop per process, and `take` has no await in it."""

    __slots__ = ("_capacity", "_rate", "_stamp", "_tokens")

    def __init__(self, *, rate: float, capacity: float, now: float) -> None:
        self._rate = rate
        self._capacity = capacity
        self._tokens = capacity  # a partner starts with a full bucket
        self._stamp = now

    @property
    def tokens(self) -> float:
        """Tokens at the last `take` (without the refill since)."""
        return self._tokens

    def take(self, cost: float, now: float) -> float:
        """Takes `cost` tokens and answers 0.0; or, when fewer are there, takes nothing and
        answers the seconds until `cost` tokens will be."""
        tokens = self._tokens
        elapsed = now - self._stamp
        if elapsed > 0:  # a clock that stands still (or steps back) refills nothing
            tokens = min(self._capacity, tokens + elapsed * self._rate)
            self._stamp = now
        if tokens >= cost:
            self._tokens = tokens - cost
            return 0.0
        self._tokens = tokens
        return (cost - tokens) / self._rate


class RateLimited(DomainError):
    """The partner sent more requests than its quota allows: nothing of the request ran.
    Retrying after `retry_after` seconds is admitted (unless others were sent meanwhile)."""

    kind = ErrorKind.LIMITED
    reason = "RATE_LIMITED"

    def __init__(self, retry_after: int = 1, quota: Quota | None = None) -> None:
        super().__init__(
            f"Too many requests for this partner; retry after {retry_after} s",
            metadata={"retryAfter": str(retry_after)},
        )
        self.retry_after = retry_after
        self.quota = quota


class TooManyStreams(DomainError):
    """The partner already holds as many open streams here as it may."""

    kind = ErrorKind.LIMITED
    reason = "TOO_MANY_STREAMS"

    def __init__(self, limit: int = 0) -> None:
        held = (
            f"{limit} open streams on this server process, the most allowed"
            if limit
            else "the most open streams allowed"
        )
        super().__init__(
            f"The partner already holds {held}; close one first",
            metadata={"limit": str(limit)} if limit else None,
        )
