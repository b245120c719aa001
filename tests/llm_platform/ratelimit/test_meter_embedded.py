"""Embedded mode (SQLite, no Redis): the in-process limiter with quota counters rebuilt from the ledger."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from llm_platform.auth.principal import Principal
from llm_platform.core.migrate import upgrade_to_head
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from llm_platform.ratelimit.meter import Meter, QuotaExceeded
from tenants import service
from tenants.policy import TenantPolicies
from tenants.usage import UsageRecord, record_usage


def test_quotas_in_embedded_mode_start_from_the_sqlite_ledger(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'llmp.db'}"
    upgrade_to_head(url)

    async def scenario() -> None:
        engine = create_async_engine(url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            tenant = await service.create_tenant(session, "embedded", limits={"monthly_token_quota": 1000})
            key, _ = await service.create_api_key(session, tenant_id=tenant.id, name="k", limits={})
            await record_usage(session, UsageRecord(tenant.id, "api_key", key.id, "m", 600, 300))
        principal = Principal.of_api_key(key, tenant)

        for _ in range(2):  # a restarted process (a fresh limiter) finds the same 900 tokens spent
            meter = Meter(TenantPolicies(sessions), sessions, MemoryLimiter())
            with pytest.raises(QuotaExceeded):
                await meter.admit(tenant.id, principal, 200)
            ticket = await meter.admit(tenant.id, principal, 100)  # exactly fills the quota
            await ticket.settle(40)  # it used 40 of its 100
            last = await meter.admit(tenant.id, principal, 60)  # 940 + 60: full again
            with pytest.raises(QuotaExceeded):
                await meter.admit(tenant.id, principal, 1)
            await last.settle(0)
            await (await meter.admit(tenant.id, principal, 60)).settle(60)
        await engine.dispose()

    asyncio.run(scenario())
