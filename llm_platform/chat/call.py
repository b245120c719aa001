"""A model endpoint's call: everything it needs beyond its body, gathered by one dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.audit.context import AuditContext
from llm_platform.auth.principal import Principal
from llm_platform.chat import service
from llm_platform.dependencies import (
    AuditDep,
    CredentialTenantDep,
    FreshDep,
    InferenceDep,
    InferenceTenantDep,
    ResponseHeadersDep,
    SessionDep,
    StateDep,
)
from llm_platform.state import PlatformState
from tenants.ref import TenantRef


@dataclass
class ModelCall:
    tenant: TenantRef
    principal: Principal
    session: AsyncSession
    state: PlatformState
    headers: dict[str, str]  # put on the response, whatever it turns out to be
    fresh: bool  # Cache-Control: no-cache
    audit: AuditContext

    async def start(self, generation: service.Generation, memory: service.Memory | None) -> service.Started:
        """From the cache or admitted and dispatched; the response learns its rate-limit headers and
        x-cache, and the database connection goes back before the (possibly long) generation."""
        started = await service.start(
            self.state,
            self.session,
            self.tenant,
            self.principal,
            generation,
            memory,
            fresh=self.fresh,
            audit=self.audit,
        )
        self.headers.update(started.ticket.headers)
        self.headers["x-cache"] = "hit" if started.cache_hit else "miss"
        await self.session.close()
        return started


async def _tenant_call(
    tenant: InferenceTenantDep,
    principal: InferenceDep,
    session: SessionDep,
    state: StateDep,
    headers: ResponseHeadersDep,
    fresh: FreshDep,
    audit: AuditDep,
) -> ModelCall:
    return ModelCall(tenant, principal, session, state, headers, fresh, audit)


async def _credential_call(
    tenant: CredentialTenantDep,
    principal: InferenceDep,
    session: SessionDep,
    state: StateDep,
    headers: ResponseHeadersDep,
    fresh: FreshDep,
    audit: AuditDep,
) -> ModelCall:
    return ModelCall(tenant, principal, session, state, headers, fresh, audit)


TenantCallDep = Annotated[ModelCall, Depends(_tenant_call)]  # /{tenant}/...: the tenant in the path
CredentialCallDep = Annotated[ModelCall, Depends(_credential_call)]  # /v1/...: the credential's tenant
