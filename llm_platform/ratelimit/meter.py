"""Metering of the model endpoints: which limits apply to a request, its admission, and its settlement.

A tenant's limits come from tenants.policy (cached per process for at most a second, forgotten at once
where an admin changes them); an API key's come with the key, which authentication reads on every
request. Quota counters live in the limiter and are
seeded from the usage ledger (Postgres, the source of truth) whenever they are missing: first use, a
new month or day, a flushed or restarted Redis. When Redis cannot be reached, a tenant's `fail_mode`
decides: `open` admits through this process's own limiter (per replica, so roughly replicas x the
limit), `closed` answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from prometheus_client import Counter
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_platform.core.errors import RateLimited, ServiceUnavailable
from llm_platform.core.ids import new_hex_id
from llm_platform.core.redis_client import RedisBusy
from llm_platform.metrics.api import ApiMetrics
from llm_platform.ratelimit.admission import Decision, Limiter, Periods, Scope
from llm_platform.ratelimit.headers import rate_limit_headers
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from tenants.limits import Limits
from tenants.models import FailMode
from tenants.policy import TenantPolicies
from tenants.usage import tokens_used

logger = logging.getLogger(__name__)

DEGRADED = Counter(
    "llmp_rate_limits_degraded_total",
    "Requests metered without Redis: admitted by the local limiter (open) or refused with 503 (closed)",
    ["mode"],
)
# Redis unreachable. Not RedisBusy (this process's connection pool stayed full): Redis is up, so neither
# fail mode applies; the request answers 503 without having been counted.
_LIMITER_ERRORS = (RedisError, OSError)
_REDIS_RETRY_S = 1.0  # after a failure, requests go straight to the fallback for this long
_SETTLING: set[asyncio.Task[None]] = set()  # settlements retried in the background, held until done


class QuotaExceeded(RateLimited):
    error_type = "insufficient_quota"
    code = "insufficient_quota"


class Caller(Protocol):
    """Whom a request is metered as (llm_platform.auth.principal.Principal is one): an API key (kind
    `api_key`) is counted under its own limits too, on top of its tenant's."""

    @property
    def kind(self) -> str: ...

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def key_limits(self) -> Limits | None: ...


@dataclass
class Ticket:
    """An admitted request: settle it once when it ends, with the tokens it really used."""

    limiter: Limiter
    scopes: list[Scope]
    lease: str
    periods: Periods
    decision: Decision
    reserved_tokens: int
    admitted_at: datetime  # by the meter's clock: the usage is booked on this day, as its quota was
    _settled: bool = field(default=False, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return rate_limit_headers(self.scopes, self.decision)

    async def settle(self, used_tokens: int) -> None:
        if self._settled:
            return
        self._settled = True
        try:
            await self.limiter.settle(self.scopes, self.lease, used_tokens, self.periods)
        except RedisBusy:
            # Redis is up but this process's connections are all in use. A lease left unsettled would
            # hold its concurrency slot until LEASE_TTL: settle it in the background, however long
            # that takes (each try waits for a connection first), rather than make the caller wait.
            task = asyncio.create_task(self._settle_when_free(used_tokens))
            _SETTLING.add(task)
            task.add_done_callback(_SETTLING.discard)
        except _LIMITER_ERRORS:  # the reservation expires with its window; the ledger has the truth
            logger.warning("could not settle rate-limit lease %s: Redis unreachable", self.lease)

    async def _settle_when_free(self, used_tokens: int) -> None:
        while True:
            try:
                await self.limiter.settle(self.scopes, self.lease, used_tokens, self.periods)
                return
            except RedisBusy:
                continue  # the pool's wait for a connection is the backoff
            except _LIMITER_ERRORS:
                logger.warning("could not settle rate-limit lease %s: Redis unreachable", self.lease)
                return


def periods_at(moment: datetime) -> Periods:
    return _periods_of(moment.date())


@functools.lru_cache(maxsize=8)  # every request asks; the answer changes once a day
def _periods_of(day: date) -> Periods:
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    month_start = day_start.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    return Periods(
        month=month_start.strftime("%Y-%m"),
        day=day_start.strftime("%Y-%m-%d"),
        month_ends_ms=int(next_month.timestamp() * 1000),
        day_ends_ms=int((day_start + timedelta(days=1)).timestamp() * 1000),
    )


class Meter:
    def __init__(
        self,
        policies: TenantPolicies,
        sessions: async_sessionmaker[AsyncSession],
        limiter: Limiter,
        fallback: MemoryLimiter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ledger_sync: Callable[[], Awaitable[None]] | None = None,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.policies = policies
        self._sessions = sessions  # to rebuild quota counters from the ledger
        self.limiter = limiter
        self.fallback = fallback  # None: the limiter is already in-process
        self.clock = clock  # injectable, so tests can roll a month over
        self._ledger_sync = ledger_sync  # writes this process's pending usage before a counter is rebuilt
        self._redis_down_until = 0.0
        self._metrics = metrics or ApiMetrics()
        self._degraded = False  # the last decision was the fallback's (or a fail-closed refusal)

    async def admit(self, tenant_id: uuid.UUID, principal: Caller, reserve_tokens: int) -> Ticket:
        """Admits the request against its tenant's and API key's limits, or raises RateLimited /
        QuotaExceeded (429) or ServiceUnavailable (503: a fail-closed tenant while Redis is down, or
        RedisBusy when no pooled connection freed up in time)."""
        policy = await self.policies.get(tenant_id)
        mode = policy.fail_mode
        scopes, owners = _scopes(tenant_id, policy.limits, principal)
        now = self.clock()
        periods, lease = periods_at(now), new_hex_id()
        limiter = self.limiter
        try:
            if self.fallback is not None and time.monotonic() < self._redis_down_until:
                raise ConnectionError("Redis was unreachable a moment ago")
            decision = await self._decide(limiter, scopes, owners, lease, reserve_tokens, periods)
            if self._degraded:
                self._set_degraded(False)
        except _LIMITER_ERRORS as exc:
            if self.fallback is None:
                raise
            self._redis_down_until = time.monotonic() + _REDIS_RETRY_S
            DEGRADED.labels(mode=mode.value).inc()
            if not self._degraded:
                self._set_degraded(True)
            logger.warning("rate limits degraded (Redis unreachable: %s); tenant fails %s", exc, mode.value)
            if mode is FailMode.closed:
                raise ServiceUnavailable(
                    "Rate limits cannot be checked right now; please retry shortly",
                    code="limits_unavailable",
                    headers={"Retry-After": "1"},
                ) from exc
            limiter = self.fallback
            decision = await self._decide(limiter, scopes, owners, lease, reserve_tokens, periods)
        metrics = self._metrics
        if not decision.allowed:
            whose = "key" if scopes[decision.scope].name.startswith("key:") else "tenant"
            metrics.limiter_refusals[(decision.reason or "requests", whose)].inc()
            raise _refusal(decision, scopes, periods, int(now.timestamp() * 1000), reserve_tokens)
        # Redis's, or this process's own: the only limiter embedded, or the fallback while Redis is down.
        in_process = self.fallback is None or limiter is self.fallback
        metrics.limiter_admissions[("local" if in_process else "redis",)].inc()
        return Ticket(limiter, scopes, lease, periods, decision, reserve_tokens, now)

    def _set_degraded(self, degraded: bool) -> None:
        self._degraded = degraded
        self._metrics.limits_degraded.set(1 if degraded else 0)

    async def _decide(
        self,
        limiter: Limiter,
        scopes: list[Scope],
        owners: list[tuple[uuid.UUID, uuid.UUID | None]],
        lease: str,
        reserve_tokens: int,
        periods: Periods,
    ) -> Decision:
        for _ in range(2 * len(scopes) + 1):  # at most two counters a scope to seed
            decision = await limiter.admit(scopes, lease, reserve_tokens, periods)
            if decision.rebuild is None:
                return decision
            index, kind = decision.rebuild
            start = date.fromisoformat(periods.day if kind == "day" else periods.month + "-01")
            ends_ms = periods.day_ends_ms if kind == "day" else periods.month_ends_ms
            end = datetime.fromtimestamp(ends_ms / 1000, UTC).date() - timedelta(days=1)
            tenant_id, key_id = owners[index]
            if self._ledger_sync is not None:
                with contextlib.suppress(Exception):  # Postgres down: tokens_used below says so
                    await self._ledger_sync()
            async with self._sessions() as session:
                used = await tokens_used(session, tenant_id, key_id, start, end)
            # Kept a day past the period (late settlements), and never already expired (tests' clocks).
            expires_ms = max(ends_ms, int(time.time() * 1000)) + 86_400_000
            await limiter.seed_quota(
                scopes[index], periods.day if kind == "day" else periods.month, used, expires_ms
            )
        raise RuntimeError("quota counters keep disappearing")


def _scopes(
    tenant_id: uuid.UUID, tenant_limits: Limits, principal: Caller
) -> tuple[list[Scope], list[tuple[uuid.UUID, uuid.UUID | None]]]:
    """The tenant's scope, and the API key's when the caller used one (its limits can only be tighter:
    a request must pass both). Each with whose usage rebuilds its quota counters."""
    group = str(tenant_id)
    scopes = [Scope(group, "tenant", tenant_limits)]
    owners: list[tuple[uuid.UUID, uuid.UUID | None]] = [(tenant_id, None)]
    if principal.kind == "api_key":
        scopes.append(Scope(group, f"key:{principal.id}", principal.key_limits or Limits()))
        owners.append((tenant_id, principal.id))
    return scopes, owners


def _refusal(
    decision: Decision, scopes: list[Scope], periods: Periods, now_ms: int, reserve_tokens: int
) -> RateLimited:
    scope = scopes[decision.scope]
    limits, usage = scope.limits, decision.usage[decision.scope]
    whose = "this API key" if scope.name.startswith("key:") else "this tenant"
    retry_after = decision.retry_after_s(periods, now_ms)
    headers = rate_limit_headers(scopes, decision)
    if decision.reason in ("monthly_quota", "daily_quota"):
        monthly = decision.reason == "monthly_quota"
        limit = limits.monthly_tokens if monthly else limits.daily_tokens
        used = usage.month_tokens if monthly else usage.day_tokens
        period, adjective = ("month", "monthly") if monthly else ("day", "daily")
        error: RateLimited = QuotaExceeded(
            f"The {adjective} token quota of {whose} is spent: {used} of {limit} tokens used, and this "
            f"request may use up to {reserve_tokens} (prompt + max_tokens). It renews at the start of "
            f"the next {period} (UTC), or when an admin raises it.",
            retry_after_s=retry_after,
        )
    elif decision.reason == "tokens":
        if usage.tokens_reset_ms < 0:
            message = (
                f"This request may use up to {reserve_tokens} tokens (prompt + max_tokens), more than the "
                f"{limits.tokens_per_minute} tokens per minute allowed for {whose}: lower max_tokens."
            )
        else:
            message = (
                f"Rate limit reached for {whose}: {limits.tokens_per_minute} tokens per minute, "
                f"{usage.tokens} in use, and this request may use up to {reserve_tokens}."
            )
        error = RateLimited(message, retry_after_s=retry_after)
    elif decision.reason == "concurrency":
        error = RateLimited(
            f"Too many requests in flight for {whose}: at most {limits.concurrent_requests} at once.",
            retry_after_s=retry_after,
        )
    else:
        error = RateLimited(
            f"Rate limit reached for {whose}: {limits.requests_per_minute} requests per minute.",
            retry_after_s=retry_after,
        )
    error.headers.update(headers)
    return error
