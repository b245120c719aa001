"""The embedded mode's limiter (and the fail-open fallback when Redis is down): the same sliding logs,
quota counters and answers as the Redis one, for one process."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from llm_platform.ratelimit.admission import WINDOW_MS, Decision, Periods, Scope, ScopeUsage
from llm_platform.ratelimit.redis_limiter import LEASE_TTL_MS


@dataclass
class _State:
    requests: OrderedDict[str, int] = field(default_factory=OrderedDict)  # lease -> admitted at (ms)
    tokens: OrderedDict[str, list[int]] = field(default_factory=OrderedDict)  # lease -> [at, tokens]
    slots: dict[str, int] = field(default_factory=dict)  # lease -> expires at (ms)
    leases: dict[str, tuple[int, int]] = field(default_factory=dict)  # lease -> (reserved, expires at)
    quotas: dict[str, tuple[int, int]] = field(default_factory=dict)  # period -> (tokens, expires epoch ms)


class MemoryLimiter:
    def __init__(self, window_ms: int = WINDOW_MS, lease_ttl_ms: int = LEASE_TTL_MS) -> None:
        self._window_ms = window_ms
        self._lease_ttl_ms = lease_ttl_ms
        self._states: dict[tuple[str, str], _State] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def _now_ms() -> int:
        return time.monotonic_ns() // 1_000_000

    def _state(self, scope: Scope) -> _State:
        return self._states.setdefault((scope.group, scope.name), _State())

    async def admit(self, scopes: list[Scope], lease: str, reserve_tokens: int, periods: Periods) -> Decision:
        async with self._lock:
            now, wall = self._now_ms(), time.time_ns() // 1_000_000
            states = [self._state(scope) for scope in scopes]
            quota_periods = [(periods.month, "month"), (periods.day, "day")]
            for index, (scope, state) in enumerate(zip(scopes, states, strict=True)):
                self._expire(state, now, wall)
                for (period, kind), limit in zip(
                    quota_periods, (scope.limits.monthly_tokens, scope.limits.daily_tokens), strict=True
                ):
                    if limit is None:
                        state.quotas.pop(period, None)
                    elif period not in state.quotas:
                        return Decision(False, None, -1, (), rebuild=(index, kind))

            def usage(token_waits: dict[int, int] | None = None) -> tuple[ScopeUsage, ...]:
                return tuple(
                    ScopeUsage(
                        len(state.requests),
                        sum(amount for _, amount in state.tokens.values()),
                        self._reset(state.requests, now),
                        (token_waits or {}).get(index, self._reset(state.tokens, now)),
                        state.quotas.get(periods.month, (0, 0))[0],
                        state.quotas.get(periods.day, (0, 0))[0],
                    )
                    for index, state in enumerate(states)
                )

            for index, (scope, state) in enumerate(zip(scopes, states, strict=True)):
                limits = scope.limits
                for period, limit, reason in (
                    (periods.month, limits.monthly_tokens, "monthly_quota"),
                    (periods.day, limits.daily_tokens, "daily_quota"),
                ):
                    if limit is not None and state.quotas[period][0] + reserve_tokens > limit:
                        return Decision(False, reason, index, usage())
            for index, (scope, state) in enumerate(zip(scopes, states, strict=True)):
                limits, used_tokens = scope.limits, sum(amount for _, amount in state.tokens.values())
                if (
                    limits.requests_per_minute is not None
                    and len(state.requests) + 1 > limits.requests_per_minute
                ):
                    return Decision(False, "requests", index, usage())
                if (
                    limits.tokens_per_minute is not None
                    and used_tokens + reserve_tokens > limits.tokens_per_minute
                ):
                    wait = self._tokens_free_in(
                        state, now, used_tokens + reserve_tokens - limits.tokens_per_minute
                    )
                    wait = -1 if reserve_tokens > limits.tokens_per_minute else wait
                    return Decision(False, "tokens", index, usage({index: wait}))
                if (
                    limits.concurrent_requests is not None
                    and len(state.slots) + 1 > limits.concurrent_requests
                ):
                    return Decision(False, "concurrency", index, usage())

            for scope, state in zip(scopes, states, strict=True):
                state.requests[lease] = now
                if reserve_tokens > 0:
                    state.tokens[lease] = [now, reserve_tokens]
                if scope.limits.concurrent_requests is not None:
                    state.slots[lease] = now + self._lease_ttl_ms
                state.leases[lease] = (reserve_tokens, now + self._lease_ttl_ms)
                for period in (periods.month, periods.day):
                    if period in state.quotas:
                        used, expires = state.quotas[period]
                        state.quotas[period] = (used + reserve_tokens, expires)
            return Decision(True, None, -1, usage())

    async def settle(self, scopes: list[Scope], lease: str, used_tokens: int, periods: Periods) -> None:
        async with self._lock:
            for scope in scopes:
                state = self._state(scope)
                state.slots.pop(lease, None)
                reserved = state.leases.pop(lease, None)
                if reserved is None:
                    continue
                delta = used_tokens - reserved[0]
                if lease in state.tokens:
                    state.tokens[lease][1] = used_tokens
                for period in (periods.month, periods.day):
                    if period in state.quotas:
                        used, expires = state.quotas[period]
                        state.quotas[period] = (used + delta, expires)

    async def seed_quota(self, scope: Scope, period: str, used_tokens: int, expires_at_ms: int) -> None:
        async with self._lock:
            self._state(scope).quotas.setdefault(period, (used_tokens, expires_at_ms))

    async def peek(self, scope: Scope) -> tuple[int, int]:
        async with self._lock:
            now, state = self._now_ms(), self._state(scope)
            self._expire(state, now, time.time_ns() // 1_000_000)
            return len(state.requests), self._reset(state.requests, now)

    async def clear(self, scope: Scope) -> None:
        async with self._lock:
            self._states.pop((scope.group, scope.name), None)

    def _expire(self, state: _State, now: int, wall: int) -> None:
        horizon = now - self._window_ms
        while state.requests and next(iter(state.requests.values())) <= horizon:
            state.requests.popitem(last=False)
        while state.tokens and next(iter(state.tokens.values()))[0] <= horizon:
            state.tokens.popitem(last=False)
        for lease in [lease for lease, expires in state.slots.items() if expires <= now]:
            del state.slots[lease]
        for lease in [lease for lease, (_, expires) in state.leases.items() if expires <= now]:
            del state.leases[lease]
        for period in [period for period, (_, expires) in state.quotas.items() if expires <= wall]:
            del state.quotas[period]

    def _reset(self, log: OrderedDict, now: int) -> int:  # type: ignore[type-arg]
        if not log:
            return 0
        oldest = next(iter(log.values()))
        return (oldest if isinstance(oldest, int) else oldest[0]) + self._window_ms - now

    def _tokens_free_in(self, state: _State, now: int, need: int) -> int:
        freed = 0
        for at, amount in state.tokens.values():
            freed += amount
            if freed >= need:
                return at + self._window_ms - now
        return -1
