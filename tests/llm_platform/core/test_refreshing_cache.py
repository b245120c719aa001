"""The request path's per-process caches: one load however many ask, renewed before expiry, never stale."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from llm_platform.core.refreshing_cache import RefreshingCache

TTL_S = 1.0  # wide windows: a busy CI machine must not push a step past its mark


class Source:
    """A database stand-in that counts its reads and can be made slow or broken."""

    def __init__(self) -> None:
        self.version, self.loads, self.delay_s, self.broken = 1, 0, 0.0, False

    async def load(self, key: str) -> str:
        self.loads += 1
        version = self.version  # what the read sees when it starts
        await asyncio.sleep(self.delay_s)
        if self.broken:
            raise ConnectionError("database unreachable")
        return f"{key}-v{version}"


def test_concurrent_requests_for_a_missing_value_share_one_load() -> None:
    async def scenario() -> None:
        source = Source()
        source.delay_s = 0.05
        cache = RefreshingCache(source.load, TTL_S, "test")
        values = await asyncio.gather(*(cache.get("a") for _ in range(50)))
        assert values == ["a-v1"] * 50
        assert source.loads == 1

    asyncio.run(scenario())


def test_a_value_in_use_is_renewed_in_the_background_and_never_served_past_its_ttl() -> None:
    async def scenario() -> None:
        source = Source()
        cache = RefreshingCache(source.load, TTL_S, "test")
        assert await cache.get("a") == "a-v1"
        source.version = 2
        await asyncio.sleep(TTL_S * 0.85)  # in the renewal window, not expired
        assert await cache.get("a") == "a-v1"  # served at once, while a reload starts
        await asyncio.sleep(0.01)
        assert await cache.get("a") == "a-v2"
        assert source.loads == 2
        source.version = 3
        await asyncio.sleep(TTL_S * 1.1)  # nobody asked in the window: expired, so the caller waits
        assert await cache.get("a") == "a-v3"

    asyncio.run(scenario())


def test_forget_wins_over_a_load_already_under_way() -> None:
    async def scenario() -> None:
        source = Source()
        source.delay_s = 0.05
        cache = RefreshingCache(source.load, TTL_S, "test")
        early = asyncio.create_task(cache.get("a"))  # reads version 1...
        await asyncio.sleep(0.01)
        source.version = 2  # ...an admin changes it meanwhile, and this process forgets it
        cache.forget("a")
        assert await early == "a-v1"  # that caller asked before the change
        assert await cache.get("a") == "a-v2"  # nobody after it sees the old value

    asyncio.run(scenario())


def test_a_failed_background_renewal_keeps_the_value_until_it_expires() -> None:
    async def scenario() -> None:
        source = Source()
        cache = RefreshingCache(source.load, TTL_S, "test")
        assert await cache.get("a") == "a-v1"
        source.broken = True
        await asyncio.sleep(TTL_S * 0.85)
        assert await cache.get("a") == "a-v1"
        await asyncio.sleep(TTL_S * 0.3)
        with pytest.raises(ConnectionError):
            await cache.get("a")

    asyncio.run(scenario())


def test_an_unreachable_database_keeps_the_values_held_and_nothing_else() -> None:
    down = False

    async def load(key: str) -> str:
        if down:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
        return f"{key}-v1"

    async def scenario() -> None:
        nonlocal down
        cache = RefreshingCache(load, 0.2, "test")
        assert await cache.get("a") == "a-v1"
        down = True
        await asyncio.sleep(0.3)  # expired
        assert await cache.get("a") == "a-v1"  # served on through the outage
        await asyncio.sleep(0.3)
        assert await cache.get("a") == "a-v1"
        with pytest.raises(OperationalError):
            await cache.get("b")  # never held: only the database knows it
        cache.forget("a")  # an admin change on this replica: its old value must not come back
        with pytest.raises(OperationalError):
            await cache.get("a")

    asyncio.run(scenario())
