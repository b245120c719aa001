"""API keys authenticated in the last second, per process: the request path's most frequent query.

A hit needs the exact key (entries are found by its SHA-256) and still honours the key's expiry. A
revocation, a limit change or a tenant's suspension made in this process forgets the entries at once
(tenants.service does, given this cache); other replicas honour them within TTL_S. A hit touches no
database session at all: what model calls need of the tenant (id and slug) is in the principal.
Entries are renewed in the background while a key is in use, and concurrent requests with a key not
in the cache share one lookup (llm_platform.core.refreshing_cache).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from llm_platform.auth.principal import Principal
from llm_platform.core.refreshing_cache import RefreshingCache

TTL_S = 1.0
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class CachedKey:
    principal: Principal
    expires_at: datetime | None


KeyRef = tuple[str, str]  # the key's SHA-256 and its prefix (to find its row)


class ApiKeyCache:
    def __init__(self, load: Callable[[KeyRef], Awaitable[CachedKey]], ttl_s: float = TTL_S) -> None:
        """`load` reads and checks a key in the database, raising if it is not valid now."""
        self._cache: RefreshingCache[KeyRef, CachedKey] = RefreshingCache(load, ttl_s, "API key", MAX_ENTRIES)

    async def principal(self, digest: str, prefix: str, now: datetime) -> Principal:
        ref = (digest, prefix)
        entry = await self._cache.get(ref)
        if entry.expires_at is not None and entry.expires_at <= now:
            entry = await self._cache.reload(ref)  # the database says why it is no longer valid
        return entry.principal

    def forget(self, *, key_id: uuid.UUID | None = None, tenant_id: uuid.UUID | None = None) -> None:
        """Drops the entries of a key, or of every key of a tenant (admin actions: rare, so a scan)."""
        self._cache.forget_where(
            lambda _, entry: entry.principal.id == key_id or entry.principal.tenant_id == tenant_id
        )
