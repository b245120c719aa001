"""Failed-login throttling per account and per client address, on the platform's own limiter.

The same sliding-window log as the model endpoints' limits (Redis, shared by every replica; in-process
without Redis), with a window of its own (LLMP_LOGIN_WINDOW_S). Only failures are counted, and a
successful login clears its account's, so a user who types the right password is never held back by
their own earlier mistakes. If Redis is unreachable, failures are counted by this process alone.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from llm_platform.core.errors import RateLimited
from llm_platform.core.settings import Settings
from llm_platform.ratelimit.admission import Limiter, Scope
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from llm_platform.ratelimit.meter import periods_at
from llm_platform.ratelimit.redis_limiter import RedisLimiter
from tenants.limits import Limits

logger = logging.getLogger(__name__)


class LoginThrottle:
    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        window_ms = settings.login_window_s * 1000
        self._local = MemoryLimiter(window_ms=window_ms)
        self._shared: Limiter = RedisLimiter(redis, window_ms=window_ms) if redis else self._local
        self._per_account = settings.login_max_failures_per_account
        self._per_address = settings.login_max_failures_per_address

    def _scopes(self, account: str, address: str) -> list[Scope]:
        # Limits.requests_per_minute is "per window" here: the window is the login window.
        return [
            Scope(f"login:account:{account}", "failures", Limits(requests_per_minute=self._per_account)),
            Scope(f"login:address:{address}", "failures", Limits(requests_per_minute=self._per_address)),
        ]

    async def ensure_allowed(self, account: str, address: str) -> None:
        """Raises RateLimited when the account or the address has used up its failed attempts."""
        for scope in self._scopes(account, address):
            failures, reset_ms = await self._call(lambda limiter, s=scope: limiter.peek(s))
            if failures >= (scope.limits.requests_per_minute or 0):
                raise RateLimited(
                    "Too many failed login attempts; try again later",
                    retry_after_s=max(1, -(-reset_ms // 1000)),
                )

    async def record_failure(self, account: str, address: str) -> None:
        periods = periods_at(datetime.now(UTC))
        for scope in self._scopes(account, address):  # one by one: a full account still counts its address
            await self._call(lambda limiter, s=scope: limiter.admit([s], uuid.uuid4().hex, 0, periods))

    async def record_success(self, account: str) -> None:
        await self._call(lambda limiter: limiter.clear(self._scopes(account, "-")[0]))

    async def _call(self, operation):  # type: ignore[no-untyped-def]
        try:
            return await operation(self._shared)
        except (RedisError, OSError) as exc:
            logger.warning("login throttling degraded (Redis unreachable: %s): counting in this process", exc)
            return await operation(self._local)
