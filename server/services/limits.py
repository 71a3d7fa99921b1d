"""The per-partner request rate limit of one server process (docs/DECISIONS.md, "Limits").

Each worker process keeps a token bucket per partner and charges every request it serves
`share` tokens of a bucket sized and refilled at the machine's quota, `share` being the
number of workers on the machine: Envoy spreads a partner's REST calls round robin over
them, so together they admit about the configured rate and burst, and the RateLimit
figures a partner sees are the machine's. Checked right after the bearer token, before
the signature is verified (services/authentication.py): a refused request costs a dict
lookup and a few float operations, and runs nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from uuid import UUID

from server.domain.limits import Quota, RateLimited, TokenBucket


class PartnerRateLimiter:
    def __init__(
        self, quota: Quota, *, share: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`clock`: monotonic seconds (a wall clock that steps back would refill nothing,
        one that jumps ahead would refill every bucket)."""
        if share < 1:
            raise ValueError("share must be at least 1")
        self.quota = quota
        self._cost = float(share)
        # A bucket must hold one request's cost, however small the burst.
        self._capacity = float(max(quota.burst, share))
        self._rate = quota.per_second
        self._clock = clock
        # One bucket per partner that called this process; partners are few (an operator
        # creates them), so buckets are kept rather than swept.
        self._buckets: dict[UUID, TokenBucket] = {}

    def admit(self, partner_id: UUID) -> None:
        """Takes the request's tokens, or raises RateLimited saying when to retry."""
        now = self._clock()
        bucket = self._buckets.get(partner_id)
        if bucket is None:
            bucket = TokenBucket(rate=self._rate, capacity=self._capacity, now=now)
            self._buckets[partner_id] = bucket
        wait = bucket.take(self._cost, now)
        if wait:
            raise RateLimited(max(1, math.ceil(wait)), self.quota)
