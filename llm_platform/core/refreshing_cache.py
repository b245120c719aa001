"""Per-process caches of database reads that the request path makes on every call, without stampedes.

A value is served for at most `ttl_s` after it was read. In the last quarter of that time, the first
request that sees it starts one background reload and goes on with the value it has: under steady
traffic values are renewed before they expire and no request waits on the database. An expired or
missing value is loaded once, however many requests want it at that moment: they await the same load.

A plain TTL cache expires for all concurrent requests at once, and each of them runs its own queries:
every request would stall once a TTL (bench/RESULTS.md, gateway, second round).

While the database is unreachable, a value already held keeps serving past its TTL, and is tried again
in the background every quarter TTL: requests with a known API key, tenant and model go on (their limits
live in Redis) instead of all answering 503. Nothing can change these values meanwhile, since every
change goes through the database. A value never held still needs the database (503 without it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from llm_platform.core.db import DATABASE_UNREACHABLE, describe_error

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

logger = logging.getLogger(__name__)

_REFRESH_AT = 0.75  # of the TTL: late enough to cost few extra loads, early enough to beat expiry


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    loaded_at: float  # monotonic


class RefreshingCache(Generic[K, V]):
    def __init__(
        self, load: Callable[[K], Awaitable[V]], ttl_s: float, name: str, max_entries: int = 10_000
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._name = name  # for log lines
        self._max_entries = max_entries  # past it, expired entries are dropped
        self._entries: dict[K, _Entry[V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}
        self._generation = 0  # bumped by forget(): a load begun before it must not store its value
        self._unreachable = False  # the last load found the database unreachable (logged once)

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            age = time.monotonic() - entry.loaded_at
            if age < self._ttl_s:
                if age >= self._ttl_s * _REFRESH_AT and key not in self._loading:
                    self._start(key).add_done_callback(self._log_failure)
                return entry.value
        try:
            return await self.reload(key)
        except DATABASE_UNREACHABLE:
            kept = self._entries.get(key)  # kept by the failed load, unless forgotten meanwhile
            if kept is None:
                raise
            return kept.value

    async def reload(self, key: K) -> V:
        """A value read now, or joining the read under way: for callers that know their copy is old."""
        task = self._loading.get(key) or self._start(key)
        return await asyncio.shield(task)  # one caller giving up does not cancel the others' load

    def forget(self, key: K | None = None) -> None:
        """Drops one key (or all): the next request loads it anew, never from a load begun before."""
        self.forget_where(lambda candidate, _: key is None or candidate == key)

    def forget_where(self, drop: Callable[[K, V], bool]) -> None:
        self._generation += 1
        self._loading.clear()  # loads under way store nothing now (their waiters still get a value)
        for key, entry in list(self._entries.items()):
            if drop(key, entry.value):
                del self._entries[key]

    def _start(self, key: K) -> asyncio.Task[V]:
        task = asyncio.get_running_loop().create_task(self._load_and_store(key, self._generation))
        task.add_done_callback(_retrieve)  # its waiters may all have been cancelled meanwhile
        self._loading[key] = task
        return task

    async def _load_and_store(self, key: K, generation: int) -> V:
        try:
            value = await self._load(key)
            if generation == self._generation:
                if len(self._entries) >= self._max_entries:
                    self._drop_expired()
                self._entries[key] = _Entry(value, time.monotonic())
            if self._unreachable:
                self._unreachable = False
                logger.info("the %s cache reads the database again", self._name)
            return value
        except DATABASE_UNREACHABLE as exc:
            entry = self._entries.get(key)
            if entry is not None and generation == self._generation:
                # Served on; the next request past three quarters of the TTL tries again, in the background.
                self._entries[key] = _Entry(entry.value, time.monotonic() - self._ttl_s * _REFRESH_AT)
            if not self._unreachable:  # one line per outage, not one per key and retry
                self._unreachable = True
                logger.warning(
                    "the %s cache serves the values it holds: database unreachable (%s)",
                    self._name,
                    describe_error(exc),
                )
            raise
        finally:
            if self._loading.get(key) is asyncio.current_task():
                del self._loading[key]

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for key, entry in list(self._entries.items()):
            if now - entry.loaded_at >= self._ttl_s:
                del self._entries[key]

    def _log_failure(self, task: asyncio.Task[V]) -> None:
        # A background reload failed otherwise (say, the key was revoked): the value in hand serves until
        # it expires; then requests load it themselves and get the error.
        exc = None if task.cancelled() else task.exception()
        if exc is not None and not isinstance(exc, DATABASE_UNREACHABLE):  # those: logged once, above
            logger.warning("could not refresh the %s cache: %s", self._name, describe_error(exc))


def _retrieve(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()
