"""A tenant's limits and settings as the request path needs them, cached per process for a second.

The model endpoints consult them on every request; reading two rows each time would cost more than
everything else the API layer does. The replica where an admin changes them forgets its copy at once;
the others pick the change up within TTL_S (renewed in the background before then, under traffic).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_platform.core.refreshing_cache import RefreshingCache
from tenants.limits import Limits
from tenants.models import FailMode, TenantLimits, TenantSettings
from tenants.settings_defaults import SETTINGS_DEFAULTS

TTL_S = 1.0


@dataclass(frozen=True)
class CachePolicy:
    enabled: bool = SETTINGS_DEFAULTS.cache_enabled
    ttl_s: int = SETTINGS_DEFAULTS.cache_ttl_s
    max_entry_bytes: int = SETTINGS_DEFAULTS.cache_max_entry_bytes
    sampled: bool = SETTINGS_DEFAULTS.cache_sampled  # also answers drawn at temperature > 0 without a seed


@dataclass(frozen=True)
class TenantPolicy:
    limits: Limits
    fail_mode: FailMode
    cache: CachePolicy
    audit_store_text: bool
    allowed_models: frozenset[str] | None = None  # None: every enabled model


class TenantPolicies:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float = TTL_S) -> None:
        self._sessions = sessions  # a session of its own, only to load: most requests need none
        self._cache: RefreshingCache[uuid.UUID, TenantPolicy] = RefreshingCache(
            self._load, ttl_s, "tenant policy"
        )

    async def get(self, tenant_id: uuid.UUID) -> TenantPolicy:
        return await self._cache.get(tenant_id)

    def forget(self, tenant_id: uuid.UUID) -> None:
        self._cache.forget(tenant_id)

    async def _load(self, tenant_id: uuid.UUID) -> TenantPolicy:
        async with self._sessions() as session:
            limits = await session.get(TenantLimits, tenant_id)
            settings = await session.get(TenantSettings, tenant_id)
        chosen = settings if settings is not None else SETTINGS_DEFAULTS  # never changed: the defaults
        return TenantPolicy(
            limits=Limits.of(limits),
            fail_mode=limits.fail_mode if limits else FailMode.open,
            cache=CachePolicy(
                chosen.cache_enabled, chosen.cache_ttl_s, chosen.cache_max_entry_bytes, chosen.cache_sampled
            ),
            audit_store_text=chosen.audit_store_text,
            allowed_models=frozenset(limits.allowed_models)
            if limits is not None and limits.allowed_models is not None
            else None,
        )
