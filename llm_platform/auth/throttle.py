"""Failed-login throttling per account and per client address (moving window, via `limits`).

Redis-backed when LLMP_REDIS_URL is set, so every API replica counts the same failures; in-process
otherwise. Only failures are counted, so a user who types the right password is never held back by
their own earlier successes.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from llm_platform.errors import RateLimited
from llm_platform.settings import Settings


def limits_storage(settings: Settings) -> Storage:
    if settings.redis_url:
        return RedisStorage(f"async+{settings.redis_url}", implementation="redispy", key_prefix="llmp")
    return MemoryStorage()


class LoginThrottle:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account = RateLimitItemPerSecond(
            settings.login_max_failures_per_account, settings.login_window_s
        )
        self._per_address = RateLimitItemPerSecond(
            settings.login_max_failures_per_address, settings.login_window_s
        )

    async def ensure_allowed(self, account: str, address: str) -> None:
        """Raises RateLimited when the account or the address has used up its failed attempts."""
        for item, key in ((self._per_account, account), (self._per_address, address)):
            if not await self._limiter.test(item, "login-failures", key):
                stats = await self._limiter.get_window_stats(item, "login-failures", key)
                retry_after_s = max(1, math.ceil(stats.reset_time - time.time()))
                raise RateLimited(
                    "Too many failed login attempts; try again later", retry_after_s=retry_after_s
                )

    async def record_failure(self, account: str, address: str) -> None:
        await self._limiter.hit(self._per_account, "login-failures", account)
        await self._limiter.hit(self._per_address, "login-failures", address)

    async def record_success(self, account: str) -> None:
        await self._limiter.clear(self._per_account, "login-failures", account)
