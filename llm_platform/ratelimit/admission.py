"""What an admission decision says, whichever limiter made it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

WINDOW_MS = 60_000  # requests and tokens are limited per sliding minute


@dataclass(frozen=True)
class Limits:
    """None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_requests: int | None = None


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str | None  # requests | tokens | concurrency, when refused
    requests_used: int  # in the sliding window, this request included when allowed
    tokens_used: int  # reserved or settled tokens in the sliding window
    requests_reset_ms: int  # until the oldest counted request leaves the window
    tokens_reset_ms: int  # until the oldest counted tokens leave it (-1: a reservation larger than the limit)

    def retry_after_s(self) -> int:
        """Whole seconds a refused client should wait (at least 1)."""
        wait_ms = {"requests": self.requests_reset_ms, "tokens": self.tokens_reset_ms}.get(
            self.reason or "", 1000
        )
        return max(1, -(-max(wait_ms, 0) // 1000))


class Limiter(Protocol):
    async def admit(self, scope: str, limits: Limits, lease: str, reserve_tokens: int) -> Admission:
        """Counts one request and reserves its tokens in `scope`, atomically, or refuses without counting."""
        ...

    async def settle(self, scope: str, lease: str, used_tokens: int) -> None:
        """Replaces the lease's reservation by what it really used, and frees its concurrency slot."""
        ...
