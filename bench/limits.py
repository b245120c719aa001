"""Limiter benchmark: what the limiter adds to a request, and whether replicas admit exactly the limit.

    python -m bench.limits [--requests 2000] [--limit 100] [--processes 2] [--samples 2000] [--json]

1. Latency: the admission script against real Redis (tenant + API key scopes, every dimension limited),
   timed around the limiter call itself, one call at a time; then the whole meter (which also reads the
   tenant's and the key's limits from Postgres).
2. Exactness: `--processes` API processes (`llmp serve`) share one Redis and one Postgres; a tenant
   limited to `--limit` requests/min gets `--requests` chat completions at once, spread over the
   processes, answered by a stub worker (bench/stub_worker.py) so only the API layer is measured.

Needs Postgres and Redis (scripts/services.sh). Uses the database `llmp_bench` (created and migrated
here) and Redis database 1 (flushed), never the tests' ones. With --json the last line is one JSON
object (a contract: keep its keys).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
from redis.asyncio import Redis

from bench._support import BENCH_DATABASE_URL, BENCH_REDIS_URL, STUB_MODEL, Stack, make_tenant, percentiles
from llm_platform.auth.principal import Principal
from llm_platform.core.db import create_engine_for, create_session_factory
from llm_platform.core.settings import Settings
from llm_platform.ratelimit.admission import Scope
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from llm_platform.ratelimit.meter import Meter, periods_at
from llm_platform.ratelimit.redis_limiter import RedisLimiter
from tenants.limits import Limits
from tenants.policy import TenantPolicies


async def limiter_latency(redis_url: str, samples: int) -> tuple[float, float]:
    """Milliseconds per admission, around RedisLimiter.admit alone (each lease settled, untimed)."""
    redis = Redis.from_url(redis_url)
    limiter = RedisLimiter(redis)
    group, periods = uuid.uuid4().hex, periods_at(datetime.now(UTC))
    limits = Limits(10**9, 10**12, 10**6, 10**15, 10**15)
    scopes = [Scope(group, "tenant", limits), Scope(group, "key:bench", limits)]
    for scope in scopes:
        for period in (periods.month, periods.day):
            await limiter.seed_quota(scope, period, 0, periods.month_ends_ms)
    timings = []
    for i in range(samples + 100):
        lease = uuid.uuid4().hex
        started = time.perf_counter()
        decision = await limiter.admit(scopes, lease, 300, periods)
        elapsed = (time.perf_counter() - started) * 1000
        assert decision.allowed, decision
        await limiter.settle(scopes, lease, 120, periods)
        if i >= 100:  # the first calls load the script and open connections
            timings.append(elapsed)
    await redis.aclose()
    p50, p99 = percentiles(timings, 50, 99)
    return p50, p99


async def meter_latency(settings: Settings, key: Principal, samples: int) -> tuple[float, float]:
    """Milliseconds per Meter.admit as a request calls it: the tenant's limits (cached up to a second,
    so mostly no query), the key's from the principal that authentication made, the Redis script."""
    engine = create_engine_for(settings)
    sessions = create_session_factory(engine)
    redis = Redis.from_url(settings.redis_url or "")
    meter = Meter(TenantPolicies(sessions), sessions, RedisLimiter(redis), fallback=MemoryLimiter())
    timings = []
    for i in range(samples + 100):
        started = time.perf_counter()
        ticket = await meter.admit(key.tenant_id, key, 300)  # type: ignore[arg-type]
        elapsed = (time.perf_counter() - started) * 1000
        await ticket.settle(120)
        if i >= 100:
            timings.append(elapsed)
    await redis.aclose()
    await engine.dispose()
    p50, p99 = percentiles(timings, 50, 99)
    return p50, p99


async def burst(urls: list[str], key: str, requests: int) -> Counter[int]:
    body = {"model": STUB_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{urls[i % len(urls)]}/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {key}"},
                )
                for i in range(requests)
            )
        )
    return Counter(response.status_code for response in responses)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--database-url", default=BENCH_DATABASE_URL)
    parser.add_argument("--redis-url", default=BENCH_REDIS_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    stack = Stack(args.database_url, args.redis_url)
    _, key, _ = asyncio.run(make_tenant(stack.settings, args.limit))

    limiter_p50, limiter_p99 = asyncio.run(limiter_latency(args.redis_url, args.samples))
    *_, unlimited = asyncio.run(make_tenant(stack.settings, 10**9))
    meter_p50, meter_p99 = asyncio.run(meter_latency(stack.settings, unlimited, args.samples))

    try:
        stack.start_stub()
        urls = [stack.start_api()[0] for _ in range(args.processes)]
        started = time.perf_counter()
        statuses = asyncio.run(burst(urls, key, args.requests))
        burst_s = round(time.perf_counter() - started, 2)
    finally:
        stack.stop()

    result = {
        "limit": args.limit,
        "requests": args.requests,
        "processes": args.processes,
        "admitted": statuses.get(200, 0),
        "refused_429": statuses.get(429, 0),
        "other_statuses": {str(code): n for code, n in statuses.items() if code not in (200, 429)},
        "limiter_p50_ms": limiter_p50,
        "limiter_p99_ms": limiter_p99,
        "meter_p50_ms": meter_p50,
        "meter_p99_ms": meter_p99,
        "burst_s": burst_s,
        "samples": args.samples,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    if not args.json:
        print(f"limit {args.limit}/min, {args.requests} concurrent requests over {args.processes} processes:")
        other = result["other_statuses"]
        print(
            f"  admitted {result['admitted']}, refused {result['refused_429']}, other {other} in {burst_s} s"
        )
        print(f"  limiter (Redis script) p50 {limiter_p50} ms, p99 {limiter_p99} ms")
        print(f"  meter (limits, scopes, script, refusal check) p50 {meter_p50} ms, p99 {meter_p99} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
