"""The limiters: exact across processes, sliding (no burst at a window's edge), reservations settled."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from llm_platform.ratelimit.admission import Limits
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from llm_platform.ratelimit.redis_limiter import RedisLimiter

WINDOW_MS = 1000  # a one-second "minute", so sliding behaviour is tested in real time


@pytest.fixture(params=["redis", "memory"])
def limiter_factory(request, redis_url):  # type: ignore[no-untyped-def]
    """Builds the limiter inside the running event loop (redis.asyncio clients belong to one loop)."""
    if request.param == "memory":
        return lambda: MemoryLimiter(window_ms=WINDOW_MS)
    return lambda: RedisLimiter(Redis.from_url(redis_url), window_ms=WINDOW_MS)


def _lease() -> str:
    return uuid.uuid4().hex


def test_requests_are_limited_and_slide(limiter_factory):
    async def scenario() -> None:
        limiter, scope, limits = limiter_factory(), f"t-{uuid.uuid4().hex}", Limits(requests_per_minute=3)
        assert (await limiter.admit(scope, limits, _lease(), 0)).allowed
        await asyncio.sleep(0.6)
        for _ in range(2):
            assert (await limiter.admit(scope, limits, _lease(), 0)).allowed
        refused = await limiter.admit(scope, limits, _lease(), 0)
        assert not refused.allowed and refused.reason == "requests"
        assert 0 < refused.requests_reset_ms <= 450 and refused.retry_after_s() == 1
        # A fixed window would reset at 1.0 s and admit 3 more at once; a sliding one frees just the first.
        await asyncio.sleep(0.5)
        assert (await limiter.admit(scope, limits, _lease(), 0)).allowed
        assert not (await limiter.admit(scope, limits, _lease(), 0)).allowed
        await asyncio.sleep(0.7)
        assert (await limiter.admit(scope, limits, _lease(), 0)).allowed

    asyncio.run(scenario())


def test_token_reservations_are_settled_to_real_usage(limiter_factory):
    async def scenario() -> None:
        limiter, scope, limits = limiter_factory(), f"t-{uuid.uuid4().hex}", Limits(tokens_per_minute=100)
        first = _lease()
        admitted = await limiter.admit(scope, limits, first, 60)
        assert admitted.allowed and admitted.tokens_used == 60
        refused = await limiter.admit(scope, limits, _lease(), 60)
        assert not refused.allowed and refused.reason == "tokens" and refused.tokens_reset_ms > 0
        await limiter.settle(scope, first, 20)  # it used 20 of the 60 it reserved
        again = await limiter.admit(scope, limits, _lease(), 60)
        assert again.allowed and again.tokens_used == 80
        never = await limiter.admit(scope, limits, _lease(), 500)
        assert not never.allowed and never.tokens_reset_ms == -1

    asyncio.run(scenario())


def test_concurrency_slots_are_freed_by_settle(limiter_factory):
    async def scenario() -> None:
        limiter, scope, limits = limiter_factory(), f"t-{uuid.uuid4().hex}", Limits(concurrent_requests=1)
        lease = _lease()
        assert (await limiter.admit(scope, limits, lease, 0)).allowed
        busy = await limiter.admit(scope, limits, _lease(), 0)
        assert not busy.allowed and busy.reason == "concurrency"
        await limiter.settle(scope, lease, 0)
        assert (await limiter.admit(scope, limits, _lease(), 0)).allowed

    asyncio.run(scenario())


def test_a_refusal_counts_nothing(limiter_factory):
    async def scenario() -> None:
        limiter, scope = limiter_factory(), f"t-{uuid.uuid4().hex}"
        limits = Limits(requests_per_minute=5, tokens_per_minute=10)
        assert (await limiter.admit(scope, limits, _lease(), 8)).allowed
        for _ in range(3):
            assert not (await limiter.admit(scope, limits, _lease(), 8)).allowed  # tokens refuse
        assert (await limiter.admit(scope, limits, _lease(), 2)).requests_used == 2

    asyncio.run(scenario())


def _hammer(redis_url: str, scope: str, limit: int, attempts: int, results: multiprocessing.Queue) -> None:
    async def run() -> int:
        pool = BlockingConnectionPool.from_url(redis_url, max_connections=32)  # waits for a free connection
        limiter = RedisLimiter(Redis(connection_pool=pool))
        decisions = await asyncio.gather(
            *(
                limiter.admit(scope, Limits(requests_per_minute=limit), uuid.uuid4().hex, 0)
                for _ in range(attempts)
            )
        )
        return sum(decision.allowed for decision in decisions)

    results.put(asyncio.run(run()))


def test_two_processes_admit_exactly_the_limit(redis_url):
    limit, scope = 100, f"t-{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=_hammer, args=(redis_url, scope, limit, 250, results)) for _ in range(2)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    admitted = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert sum(admitted) == limit, admitted
    assert time.monotonic() - started < 60
