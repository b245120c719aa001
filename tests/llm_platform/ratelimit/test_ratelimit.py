"""The limiters: exact across processes, sliding (no burst at a window's edge), reservations settled."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from llm_platform.auth.principal import Principal
from llm_platform.core.errors import RateLimited
from llm_platform.core.redis_client import RedisBusy, connect
from llm_platform.ratelimit.admission import Periods, Scope
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from llm_platform.ratelimit.meter import Meter
from llm_platform.ratelimit.redis_limiter import RedisLimiter
from tenants.limits import Limits
from tenants.policy import TenantPolicies

DEGRADED_SAMPLE = "llmp_rate_limits_degraded_total"
WINDOW_MS = 1000  # a one-second "minute", so sliding behaviour is tested in real time


@pytest.fixture(params=["redis", "memory"])
def limiter_factory(request, redis_url):  # type: ignore[no-untyped-def]
    """Builds the limiter inside the running event loop (redis.asyncio clients belong to one loop)."""
    if request.param == "memory":
        return lambda: MemoryLimiter(window_ms=WINDOW_MS)
    return lambda: RedisLimiter(Redis.from_url(redis_url), window_ms=WINDOW_MS)


PERIODS = Periods("2099-01", "2099-01-01", 4_071_000_000_000, 4_070_995_200_000)


def _lease() -> str:
    return uuid.uuid4().hex


class OneScope:
    """A limiter used through one scope, as the older single-scope calls read."""

    def __init__(self, limiter, limits: Limits) -> None:  # type: ignore[no-untyped-def]
        self.limiter, self.scope = limiter, Scope(uuid.uuid4().hex, "tenant", limits)

    async def admit(self, lease: str, reserve: int):  # type: ignore[no-untyped-def]
        return await self.limiter.admit([self.scope], lease, reserve, PERIODS)

    async def settle(self, lease: str, used: int) -> None:
        await self.limiter.settle([self.scope], lease, used, PERIODS)


def test_requests_are_limited_and_slide(limiter_factory):
    async def scenario() -> None:
        limiter = OneScope(limiter_factory(), Limits(requests_per_minute=3))
        assert (await limiter.admit(_lease(), 0)).allowed
        await asyncio.sleep(0.6)
        for _ in range(2):
            assert (await limiter.admit(_lease(), 0)).allowed
        refused = await limiter.admit(_lease(), 0)
        assert not refused.allowed and refused.reason == "requests"
        assert 0 < refused.usage[0].requests_reset_ms <= 450 and refused.retry_after_s(PERIODS, 0) == 1
        # A fixed window would reset at 1.0 s and admit 3 more at once; a sliding one frees just the first.
        await asyncio.sleep(0.5)
        assert (await limiter.admit(_lease(), 0)).allowed
        assert not (await limiter.admit(_lease(), 0)).allowed
        await asyncio.sleep(0.7)
        assert (await limiter.admit(_lease(), 0)).allowed

    asyncio.run(scenario())


def test_token_reservations_are_settled_to_real_usage(limiter_factory):
    async def scenario() -> None:
        limiter = OneScope(limiter_factory(), Limits(tokens_per_minute=100))
        first = _lease()
        admitted = await limiter.admit(first, 60)
        assert admitted.allowed and admitted.usage[0].tokens == 60
        refused = await limiter.admit(_lease(), 60)
        assert not refused.allowed and refused.reason == "tokens" and refused.usage[0].tokens_reset_ms > 0
        await limiter.settle(first, 20)  # it used 20 of the 60 it reserved
        again = await limiter.admit(_lease(), 60)
        assert again.allowed and again.usage[0].tokens == 80
        never = await limiter.admit(_lease(), 500)
        assert not never.allowed and never.usage[0].tokens_reset_ms == -1

    asyncio.run(scenario())


def test_concurrency_slots_are_freed_by_settle(limiter_factory):
    async def scenario() -> None:
        limiter = OneScope(limiter_factory(), Limits(concurrent_requests=1))
        lease = _lease()
        assert (await limiter.admit(lease, 0)).allowed
        busy = await limiter.admit(_lease(), 0)
        assert not busy.allowed and busy.reason == "concurrency"
        await limiter.settle(lease, 0)
        assert (await limiter.admit(_lease(), 0)).allowed

    asyncio.run(scenario())


def test_a_refusal_counts_nothing(limiter_factory):
    async def scenario() -> None:
        limiter = OneScope(limiter_factory(), Limits(requests_per_minute=5, tokens_per_minute=10))
        assert (await limiter.admit(_lease(), 8)).allowed
        for _ in range(3):
            assert not (await limiter.admit(_lease(), 8)).allowed  # tokens refuse
        assert (await limiter.admit(_lease(), 2)).usage[0].requests == 2

    asyncio.run(scenario())


def _hammer(redis_url: str, scope: str, limit: int, attempts: int, results: multiprocessing.Queue) -> None:
    async def run() -> int:
        pool = BlockingConnectionPool.from_url(redis_url, max_connections=32)  # waits for a free connection
        limiter = RedisLimiter(Redis(connection_pool=pool))
        scopes = [Scope(scope, "tenant", Limits(requests_per_minute=limit))]
        decisions = await asyncio.gather(
            *(limiter.admit(scopes, uuid.uuid4().hex, 0, PERIODS) for _ in range(attempts))
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


def test_scopes_are_admitted_together_or_not_at_all(limiter_factory):
    async def scenario() -> None:
        limiter, group = limiter_factory(), uuid.uuid4().hex
        tenant = Scope(group, "tenant", Limits(requests_per_minute=5))
        key = Scope(group, "key:1", Limits(requests_per_minute=1))
        assert (await limiter.admit([tenant, key], _lease(), 0, PERIODS)).allowed
        refused = await limiter.admit([tenant, key], _lease(), 0, PERIODS)
        assert not refused.allowed and refused.reason == "requests" and refused.scope == 1
        alone = await limiter.admit([tenant], _lease(), 0, PERIODS)
        assert alone.usage[0].requests == 2  # the refusal counted nothing against the tenant

    asyncio.run(scenario())


def test_quota_counters_are_seeded_reserved_and_settled(limiter_factory):
    async def scenario() -> None:
        limiter = limiter_factory()
        scope = Scope(uuid.uuid4().hex, "tenant", Limits(monthly_tokens=100))
        missing = await limiter.admit([scope], _lease(), 30, PERIODS)
        assert not missing.allowed and missing.rebuild == (0, "month")
        await limiter.seed_quota(scope, PERIODS.month, 50, PERIODS.month_ends_ms)
        await limiter.seed_quota(scope, PERIODS.month, 0, PERIODS.month_ends_ms)  # an existing one stays
        lease = _lease()
        admitted = await limiter.admit([scope], lease, 30, PERIODS)
        assert admitted.allowed and admitted.usage[0].month_tokens == 80
        spent = await limiter.admit([scope], _lease(), 30, PERIODS)
        assert not spent.allowed and spent.reason == "monthly_quota"
        await limiter.settle([scope], lease, 10, PERIODS)  # used 10 of the 30 reserved
        again = await limiter.admit([scope], _lease(), 30, PERIODS)
        assert again.allowed and again.usage[0].month_tokens == 90

    asyncio.run(scenario())


def _degraded() -> float:
    return sum(
        REGISTRY.get_sample_value(DEGRADED_SAMPLE, {"mode": mode}) or 0.0 for mode in ("open", "closed")
    )


async def _leftover_leases(redis: Redis, group: uuid.UUID) -> list[bytes]:
    """Leases still holding a reservation or a concurrency slot in any of the group's scopes."""
    return [
        key
        async for key in redis.scan_iter(f"llmp:rl:{{{group}}}:*")
        if key.endswith((b":leases", b":slots"))
    ]


def _metered(database_url: str, redis: Redis) -> tuple[Meter, Principal, AsyncEngine]:
    """A meter over the real Redis and Postgres, and an API key limited to 100 requests/min (its tenant
    has no limits row: unlimited, fail-open)."""
    engine = create_async_engine(database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    meter = Meter(TenantPolicies(sessions), sessions, RedisLimiter(redis), MemoryLimiter())
    principal = Principal(
        kind="api_key",
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        tenant_slug="pool",
        scopes=("inference",),
        key_limits=Limits(requests_per_minute=100, concurrent_requests=10_000),
    )
    return meter, principal, engine


def test_a_small_redis_pool_makes_requests_wait_not_fail_open(database_url, redis_url, clean_state):
    # redis-py's asyncio pool raised MaxConnectionsError when full, which the meter took for Redis being
    # down: fail-open admissions (over the limit) and settlements dropped (slots held for 15 minutes).
    async def scenario() -> None:
        redis = connect(redis_url, max_connections=2, pool_timeout_s=5.0)
        meter, principal, engine = _metered(database_url, redis)
        assert principal.tenant_id is not None
        degraded_before = _degraded()

        async def request() -> bool:
            await redis.get("llmp:test:cache-lookup")  # a request's other Redis reads compete for the pool
            try:
                ticket = await meter.admit(principal.tenant_id, principal, 10)  # type: ignore[arg-type]
            except RateLimited:
                return False
            await asyncio.sleep(0.01)
            await ticket.settle(5)
            return True

        admitted = await asyncio.gather(*(request() for _ in range(400)))
        assert sum(admitted) == 100
        assert _degraded() == degraded_before
        assert await _leftover_leases(redis, principal.tenant_id) == []
        await redis.aclose()
        await engine.dispose()

    asyncio.run(scenario())


def test_a_pool_busy_past_its_timeout_answers_503_and_settles_later(database_url, redis_url, clean_state):
    async def scenario() -> None:
        redis = connect(redis_url, max_connections=2, pool_timeout_s=0.2)
        meter, principal, engine = _metered(database_url, redis)
        assert principal.tenant_id is not None
        ticket = await meter.admit(principal.tenant_id, principal, 10)
        degraded_before = _degraded()
        pool = redis.connection_pool
        held = [await pool.get_connection() for _ in range(2)]  # every connection busy elsewhere
        with pytest.raises(RedisBusy) as refused:
            await meter.admit(principal.tenant_id, principal, 10)
        assert refused.value.status_code == 503 and refused.value.headers["Retry-After"] == "1"
        await ticket.settle(5)  # does not wait for a connection: it goes through once one is free
        await asyncio.sleep(0.5)
        for connection in held:
            await pool.release(connection)
        for _ in range(50):
            if not await _leftover_leases(redis, principal.tenant_id):
                break
            await asyncio.sleep(0.05)
        assert await _leftover_leases(redis, principal.tenant_id) == []
        assert _degraded() == degraded_before  # neither fail-open nor fail-closed: Redis was up
        peek = await meter.limiter.peek(Scope(str(principal.tenant_id), f"key:{principal.id}", Limits()))
        assert peek[0] == 1  # the refused request was not counted
        await redis.aclose()
        await engine.dispose()

    asyncio.run(scenario())
