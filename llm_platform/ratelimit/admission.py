"""What the limiters count and what an admission decision says, whichever limiter made it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tenants.limits import Limits

WINDOW_MS = 60_000  # requests and tokens are limited per sliding minute


@dataclass(frozen=True)
class Scope:
    """One set of counters: a tenant, one of its API keys, a login account...

    Every scope of one request shares a `group` (the tenant), which keeps their Redis keys in one hash
    slot, so a single script can admit across all of them atomically, also on a Redis Cluster.
    """

    group: str
    name: str
    limits: Limits


@dataclass(frozen=True)
class Periods:
    """The quota periods a request falls in (UTC), named for their counters, and when they end."""

    month: str  # "2026-11"
    day: str  # "2026-11-23"
    month_ends_ms: int  # epoch milliseconds
    day_ends_ms: int


@dataclass(frozen=True)
class ScopeUsage:
    """A scope's counters after the decision (this request included when it was admitted)."""

    requests: int  # in the sliding window
    tokens: int  # reserved or settled, in the sliding window
    requests_reset_ms: int  # until the oldest counted request leaves the window
    tokens_reset_ms: int  # until enough tokens leave it (-1: a reservation larger than the limit)
    month_tokens: int  # this month's quota counter (0 when the scope has no monthly quota)
    day_tokens: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None  # requests | tokens | concurrency | monthly_quota | daily_quota, when refused
    scope: int  # index of the refusing scope (-1 when admitted)
    usage: tuple[ScopeUsage, ...]
    rebuild: tuple[int, str] | None = None  # (scope, "month" | "day"): that quota counter must be seeded

    def retry_after_s(self, periods: Periods, now_ms: int) -> int:
        """Whole seconds a refused client should wait (at least 1)."""
        usage = self.usage[self.scope] if self.scope >= 0 else None
        wait_ms = {
            "requests": usage.requests_reset_ms if usage else 0,
            "tokens": usage.tokens_reset_ms if usage else 0,
            "monthly_quota": periods.month_ends_ms - now_ms,
            "daily_quota": periods.day_ends_ms - now_ms,
        }.get(self.reason or "", 1000)
        return max(1, -(-max(wait_ms, 0) // 1000))


class Limiter(Protocol):
    async def admit(self, scopes: list[Scope], lease: str, reserve_tokens: int, periods: Periods) -> Decision:
        """Counts one request and reserves its tokens in every scope atomically, or refuses without
        counting anything. A quota counter that does not exist yet is reported in `rebuild` instead."""
        ...

    async def settle(self, scopes: list[Scope], lease: str, used_tokens: int, periods: Periods) -> None:
        """Replaces the lease's reservation by what it really used, and frees its concurrency slot."""
        ...

    async def seed_quota(self, scope: Scope, period: str, used_tokens: int, expires_at_ms: int) -> None:
        """Creates a missing quota counter from the usage ledger (a counter that exists is kept)."""
        ...

    async def peek(self, scope: Scope) -> tuple[int, int]:
        """(requests in the sliding window, ms until the oldest leaves it), counting nothing."""
        ...

    async def clear(self, scope: Scope) -> None:
        """Forgets everything counted in the scope."""
        ...
