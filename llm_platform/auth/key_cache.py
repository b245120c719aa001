"""API keys authenticated in the last second, per process: the request path's most frequent query.

A hit needs the exact key (entries are found by its SHA-256) and still honours the key's expiry. A
revocation, a limit change or a tenant's suspension made through this process forgets the entries at
once; other replicas honour them within TTL_S. A hit touches no database session at all: what model
calls need of the tenant (id and slug) is in the principal.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache

from llm_platform.auth.principal import Principal

TTL_S = 1.0


@dataclass(frozen=True)
class CachedKey:
    principal: Principal
    expires_at: datetime | None
    refresh_last_used_at: datetime  # from then on the database path runs again, to record last use


class ApiKeyCache:
    def __init__(self, maxsize: int = 100_000) -> None:
        self._entries: TTLCache[str, CachedKey] = TTLCache(maxsize=maxsize, ttl=TTL_S, timer=time.monotonic)

    def get(self, digest: str, now: datetime) -> CachedKey | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if (entry.expires_at is not None and entry.expires_at <= now) or now >= entry.refresh_last_used_at:
            self._entries.pop(digest, None)
            return None
        return entry

    def put(
        self,
        digest: str,
        principal: Principal,
        expires_at: datetime | None,
        refresh_at: datetime,
    ) -> None:
        self._entries[digest] = CachedKey(principal, expires_at, refresh_at)

    def forget(self, *, key_id: uuid.UUID | None = None, tenant_id: uuid.UUID | None = None) -> None:
        """Drops the entries of a key, or of every key of a tenant (admin actions: rare, so a scan)."""
        for digest, entry in list(self._entries.items()):
            if entry.principal.id == key_id or entry.principal.tenant_id == tenant_id:
                self._entries.pop(digest, None)
