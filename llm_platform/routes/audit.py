"""`GET /{tenant}/admin/audit` (+ `/verify`) for tenant admins, `GET /admin/audit` (+ `/verify`, the
`platform` chain) for platform admins. Tenant members cannot read the audit log."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.audit import chain, service
from llm_platform.audit.models import PLATFORM_CHAIN
from llm_platform.audit.schemas import AuditPage, AuditRecordOut, VerificationOut
from llm_platform.auth.dependencies import PlatformAdminDep, TenantAdminDep, TenantDep
from llm_platform.core.db import SessionDep
from llm_platform.core.errors import NotFound
from llm_platform.core.openapi_errors import errors
from tenants import service as tenant_service

router = APIRouter(tags=["audit"])


class _Filters:
    def __init__(
        self,
        start: Annotated[
            datetime | None, Query(alias="from", description="From this time (inclusive)")
        ] = None,
        end: Annotated[datetime | None, Query(alias="to", description="Before this time")] = None,
        actor: Annotated[uuid.UUID | None, Query(description="A user's or API key's id")] = None,
        action: Annotated[str | None, Query(max_length=64, description="e.g. chat_completions")] = None,
        status: Annotated[int | None, Query(ge=100, le=599)] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
    ) -> None:
        self.values = {
            "start": _utc(start),
            "end": _utc(end),
            "actor_id": actor,
            "action": action,
            "status": status,
            "cursor": cursor,
            "limit": limit,
        }


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


FiltersDep = Annotated[_Filters, Depends()]


@router.get("/admin/audit", responses=errors(400, 404))  # 400: a bad cursor; 404: no such tenant
async def platform_audit(
    session: SessionDep,
    _: PlatformAdminDep,
    filters: FiltersDep,
    tenant: Annotated[str | None, Query(description="Only this tenant's rows (its slug)")] = None,
) -> AuditPage:
    tenant_id = None
    if tenant is not None:
        found = await tenant_service.find_tenant(session, tenant)
        if found is None:
            raise NotFound("Tenant not found", code="tenant_not_found", param="tenant")
        tenant_id = found.id
    return await _page(session, service.AuditQuery(tenant_id=tenant_id, **filters.values))


@router.get("/{tenant}/admin/audit", responses=errors(400))
async def tenant_audit(
    tenant: TenantDep, _: TenantAdminDep, session: SessionDep, filters: FiltersDep
) -> AuditPage:
    return await _page(session, service.AuditQuery(tenant_id=tenant.id, **filters.values))


@router.get("/{tenant}/admin/audit/verify")
async def verify_tenant_audit(tenant: TenantDep, _: TenantAdminDep, session: SessionDep) -> VerificationOut:
    """Walks the tenant's hash chain: `ok`, or the first row where it breaks and why."""
    return VerificationOut(**asdict(await chain.verify(session, str(tenant.id))))


@router.get("/admin/audit/verify")
async def verify_platform_audit(_: PlatformAdminDep, session: SessionDep) -> VerificationOut:
    """Walks the `platform` chain (actions outside any tenant: failed logins, tenant management)."""
    return VerificationOut(**asdict(await chain.verify(session, PLATFORM_CHAIN)))


async def _page(session: AsyncSession, query: service.AuditQuery) -> AuditPage:
    rows, next_cursor = await service.list_records(session, query)
    return AuditPage(data=[AuditRecordOut.model_validate(row) for row in rows], next_cursor=next_cursor)
