"""The per-partner rate limit without a server: the token bucket and the limiter on a clock
the test moves by hand, the headers a refusal carries, the settings that make it."""

from __future__ import annotations

import uuid

import grpc
import pytest

from server.config import Settings
from server.domain.limits import Quota, RateLimited, TokenBucket, TooManyStreams
from server.rpc import status
from server.services.limits import PartnerRateLimiter
from tests.helpers.clock import SteppingClock


def seconds_of(clock: SteppingClock) -> float:
    return clock.now().timestamp()


def limiter(quota: Quota, clock: SteppingClock, share: int = 1) -> PartnerRateLimiter:
    return PartnerRateLimiter(quota, share=share, clock=lambda: seconds_of(clock))


def admitted(limiter: PartnerRateLimiter, partner: uuid.UUID, times: int) -> int:
    count = 0
    for _ in range(times):
        try:
            limiter.admit(partner)
        except RateLimited:
            continue
        count += 1
    return count


def test_a_bucket_admits_its_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0, now=100.0)
    assert [bucket.take(1, 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(1, 100.0) == pytest.approx(0.5)
    assert bucket.take(1, 100.25) == pytest.approx(0.25)  # refused: nothing taken
    assert bucket.take(1, 100.5) == 0.0
    # Idle for a long time: full again, never more than its capacity.
    assert bucket.take(3, 1_000.0) == 0.0
    assert bucket.take(1, 1_000.0) == pytest.approx(0.5)


def test_a_clock_stepping_back_refills_nothing() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1.0, now=50.0)
    assert bucket.take(1, 50.0) == 0.0
    assert bucket.take(1, 10.0) == pytest.approx(1.0)
    assert bucket.take(1, 51.0) == 0.0


def test_a_partner_over_its_quota_is_refused_and_admitted_again_once_it_refilled() -> None:
    clock = SteppingClock()
    limits = limiter(Quota(per_second=0.5, burst=3), clock)
    partner = uuid.uuid4()
    assert admitted(limits, partner, 3) == 3
    with pytest.raises(RateLimited) as refused:
        limits.admit(partner)
    assert refused.value.retry_after == 2  # one token per 2 s
    assert refused.value.quota == Quota(0.5, 3)
    assert refused.value.reason == "RATE_LIMITED"
    clock.advance(seconds=2)
    limits.admit(partner)
    with pytest.raises(RateLimited):
        limits.admit(partner)


def test_one_partner_over_its_quota_leaves_the_others_theirs() -> None:
    clock = SteppingClock()
    limits = limiter(Quota(per_second=1, burst=2), clock)
    greedy, other = uuid.uuid4(), uuid.uuid4()
    assert admitted(limits, greedy, 50) == 2
    assert admitted(limits, other, 2) == 2


def test_each_of_several_workers_takes_its_share_of_the_machines_quota() -> None:
    """Two workers behind round robin: each charges two tokens a request, so together they
    admit the burst and the rate the setting names, not twice them."""
    clock = SteppingClock()
    quota = Quota(per_second=10, burst=10)
    workers = [limiter(quota, clock, share=2) for _ in range(2)]
    partner = uuid.uuid4()
    assert sum(admitted(worker, partner, 20) for worker in workers) == 10
    with pytest.raises(RateLimited) as refused:
        workers[0].admit(partner)
    assert refused.value.retry_after == 1  # two tokens at 10 a second
    clock.advance(seconds=1)  # 10 tokens for the machine, 5 requests per worker
    assert sum(admitted(worker, partner, 20) for worker in workers) == 10


def test_a_burst_smaller_than_the_workers_still_admits_a_request_per_worker() -> None:
    clock = SteppingClock()
    worker = limiter(Quota(per_second=1, burst=1), clock, share=4)
    partner = uuid.uuid4()
    assert admitted(worker, partner, 3) == 1


def test_a_refusal_carries_retry_after_and_the_ratelimit_headers_as_metadata() -> None:
    error = RateLimited(3, Quota(per_second=0.25, burst=4))
    rich, override = status.for_error(error)
    assert rich.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert override is None  # the transcoder's own mapping is already 429
    assert status.http_status_of(error) == 429
    assert dict(status.response_headers(error)) == {
        "retry-after": "3",
        "ratelimit-policy": '"default";q=4;w=16',
        "ratelimit": '"default";r=0;t=3',
    }
    assert status.response_headers(TooManyStreams(2)) == ()
    streams, _ = status.for_error(TooManyStreams(2))
    assert streams.code is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_policy_window_is_the_time_to_refill_the_burst() -> None:
    assert Quota(per_second=100, burst=100).window == 1
    assert Quota(per_second=100, burst=250).window == 3
    assert Quota(per_second=1_000, burst=10).window == 1
    with pytest.raises(ValueError):
        Quota(per_second=0, burst=1)


def test_settings_make_the_quota_with_a_seconds_worth_of_burst_by_default() -> None:
    assert Settings(rate_limit_per_second=100).rate_quota == Quota(100, 100)
    assert Settings(rate_limit_per_second=0.5).rate_quota == Quota(0.5, 1)
    assert Settings(rate_limit_per_second=10, rate_limit_burst=40).rate_quota == Quota(10, 40)
    assert Settings(rate_limit_per_second=0).rate_quota is None
    default = Settings().rate_quota
    assert default is not None and default.per_second >= 3_000  # above what one machine serves


def test_every_operation_that_needs_a_token_documents_its_429_and_headers() -> None:
    from tests.helpers.openapi import document

    published = document()
    for path, item in published["paths"].items():
        for verb, operation in item.items():
            refused = operation["responses"].get("429")
            if operation["x-access"] == "public":
                assert refused is None, (verb, path)  # no partner known: not limited
                continue
            assert refused is not None, (verb, path)
            assert "RATE_LIMITED" in refused["x-error-reasons"], (verb, path)
            assert set(refused["headers"]) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
    watch = published["paths"]["/customers:watch"]["get"]["responses"]["429"]
    assert "TOO_MANY_STREAMS" in watch["x-error-reasons"]
    webhooks = published["paths"]["/webhooks"]["put"]["responses"]["409"]
    assert "WEBHOOK_LIMIT_REACHED" in webhooks["x-error-reasons"]
    for name in ("Retry-After", "RateLimit-Policy", "RateLimit"):
        assert name in published["components"]["headers"]
