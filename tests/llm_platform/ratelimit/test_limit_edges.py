"""Both limiters, Redis's and the in-process one, at the exact edge of every limit: the limit itself is
admitted, one more is refused, a settled reservation is refunded to the token. The edges in time are in
test_memory_limiter.py (a clock the test moves; Redis reads its own)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from llm_platform.ratelimit.admission import Periods, Scope
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from llm_platform.ratelimit.redis_limiter import RedisLimiter
from tenants.limits import Limits

PERIODS = Periods("2099-01", "2099-01-01", 4_073_587_200_000, 4_070_995_200_000)


@pytest.fixture(params=["redis", "memory"])
def limiter_factory(request):  # type: ignore[no-untyped-def]
    """Built inside the test's event loop (a redis.asyncio client belongs to one loop)."""
    if request.param == "memory":
        return MemoryLimiter
    redis_url = request.getfixturevalue("redis_url")
    return lambda: RedisLimiter(Redis.from_url(redis_url))


async def admitted_until_refused(limiter, scope: Scope, reserve: int, most: int = 100) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """How many requests reserving `reserve` tokens are admitted in a row, and why the next is refused."""
    for count in range(most):
        decision = await limiter.admit([scope], uuid.uuid4().hex, reserve, PERIODS)
        if not decision.allowed:
            return count, decision.reason
    raise AssertionError(f"{most} admitted")


@pytest.mark.parametrize(
    ("limits", "reserve", "admitted", "reason"),
    [
        (Limits(requests_per_minute=7), 0, 7, "requests"),
        (Limits(tokens_per_minute=100), 25, 4, "tokens"),
        (Limits(tokens_per_minute=100), 34, 2, "tokens"),
        (Limits(concurrent_requests=3), 0, 3, "concurrency"),
        (Limits(requests_per_minute=5, tokens_per_minute=1000, concurrent_requests=9), 1, 5, "requests"),
    ],
)
def test_exactly_the_limit_is_admitted(limiter_factory, limits, reserve, admitted, reason):
    async def scenario() -> None:
        scope = Scope(uuid.uuid4().hex, "tenant", limits)
        assert await admitted_until_refused(limiter_factory(), scope, reserve) == (admitted, reason)

    asyncio.run(scenario())


@pytest.mark.parametrize(("kind", "reason"), [("month", "monthly_quota"), ("day", "daily_quota")])
def test_a_quota_admits_up_to_its_last_token(limiter_factory, kind, reason):
    async def scenario() -> None:
        limiter = limiter_factory()
        limits = Limits(monthly_tokens=100) if kind == "month" else Limits(daily_tokens=100)
        scope = Scope(uuid.uuid4().hex, "tenant", limits)
        period = PERIODS.month if kind == "month" else PERIODS.day
        await limiter.seed_quota(scope, period, 40, PERIODS.month_ends_ms)
        assert await admitted_until_refused(limiter, scope, 20) == (3, reason)  # 40 + 3 x 20 = 100

    asyncio.run(scenario())


def test_a_settled_reservation_is_refunded_to_the_token(limiter_factory):
    async def scenario() -> None:
        limiter = limiter_factory()
        scope = Scope(uuid.uuid4().hex, "tenant", Limits(tokens_per_minute=100, monthly_tokens=100))
        await limiter.seed_quota(scope, PERIODS.month, 0, PERIODS.month_ends_ms)
        lease = uuid.uuid4().hex
        assert (await limiter.admit([scope], lease, 100, PERIODS)).allowed
        await limiter.settle([scope], lease, 37, PERIODS)
        exact = await limiter.admit([scope], uuid.uuid4().hex, 63, PERIODS)
        assert exact.allowed and (exact.usage[0].tokens, exact.usage[0].month_tokens) == (100, 100)
        over = await limiter.admit([scope], uuid.uuid4().hex, 1, PERIODS)
        assert (over.allowed, over.reason) == (False, "monthly_quota")

    asyncio.run(scenario())
