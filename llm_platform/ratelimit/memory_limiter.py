"""The embedded mode's limiter: the same sliding logs and answers as the Redis one, for one process."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from llm_platform.ratelimit.admission import WINDOW_MS, Admission, Limits
from llm_platform.ratelimit.redis_limiter import LEASE_TTL_MS


@dataclass
class _Scope:
    requests: OrderedDict[str, int] = field(default_factory=OrderedDict)  # lease -> admitted at (ms)
    tokens: OrderedDict[str, tuple[int, int]] = field(default_factory=OrderedDict)  # lease -> (at, tokens)
    slots: dict[str, int] = field(default_factory=dict)  # lease -> expires at (ms)


class MemoryLimiter:
    def __init__(self, window_ms: int = WINDOW_MS, lease_ttl_ms: int = LEASE_TTL_MS) -> None:
        self._window_ms = window_ms
        self._lease_ttl_ms = lease_ttl_ms
        self._scopes: dict[str, _Scope] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def _now_ms() -> int:
        return time.monotonic_ns() // 1_000_000

    async def admit(self, scope: str, limits: Limits, lease: str, reserve_tokens: int) -> Admission:
        async with self._lock:
            now = self._now_ms()
            state = self._scopes.setdefault(scope, _Scope())
            self._expire(state, now)
            used_requests = len(state.requests)
            used_tokens = sum(amount for _, amount in state.tokens.values())

            def refuse(reason: str, tokens_reset: int | None = None) -> Admission:
                return Admission(
                    False,
                    reason,
                    used_requests,
                    used_tokens,
                    self._reset(state.requests, now),
                    self._token_reset(state, now) if tokens_reset is None else tokens_reset,
                )

            if limits.requests_per_minute is not None and used_requests + 1 > limits.requests_per_minute:
                return refuse("requests")
            if (
                limits.tokens_per_minute is not None
                and used_tokens + reserve_tokens > limits.tokens_per_minute
            ):
                return refuse(
                    "tokens",
                    self._tokens_free_in(
                        state,
                        now,
                        used_tokens + reserve_tokens - limits.tokens_per_minute,
                        reserve_tokens,
                        limits.tokens_per_minute,
                    ),
                )
            if limits.concurrent_requests is not None and len(state.slots) + 1 > limits.concurrent_requests:
                return refuse("concurrency")
            state.requests[lease] = now
            if reserve_tokens > 0:
                state.tokens[lease] = (now, reserve_tokens)
            if limits.concurrent_requests is not None:
                state.slots[lease] = now + self._lease_ttl_ms
            return Admission(
                True,
                None,
                used_requests + 1,
                used_tokens + reserve_tokens,
                self._reset(state.requests, now),
                self._token_reset(state, now),
            )

    async def settle(self, scope: str, lease: str, used_tokens: int) -> None:
        async with self._lock:
            state = self._scopes.get(scope)
            if state is None:
                return
            if lease in state.tokens:
                state.tokens[lease] = (state.tokens[lease][0], used_tokens)
            state.slots.pop(lease, None)

    def _expire(self, state: _Scope, now: int) -> None:
        horizon = now - self._window_ms
        for log in (state.requests, state.tokens):
            while log and self._at(next(iter(log.values()))) <= horizon:
                log.popitem(last=False)
        for lease in [lease for lease, expires in state.slots.items() if expires <= now]:
            del state.slots[lease]

    @staticmethod
    def _at(entry: int | tuple[int, int]) -> int:
        return entry if isinstance(entry, int) else entry[0]

    def _reset(self, log: OrderedDict, now: int) -> int:  # type: ignore[type-arg]
        return self._at(next(iter(log.values()))) + self._window_ms - now if log else 0

    def _token_reset(self, state: _Scope, now: int) -> int:
        return self._reset(state.tokens, now)

    def _tokens_free_in(self, state: _Scope, now: int, need: int, reserve: int, limit: int) -> int:
        if reserve > limit:
            return -1
        freed = 0
        for at, amount in state.tokens.values():
            freed += amount
            if freed >= need:
                return at + self._window_ms - now
        return -1
