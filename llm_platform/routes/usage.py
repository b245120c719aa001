"""Usage reports (`/admin/usage`, `/{tenant}/admin/usage`, `/{tenant}/usage`): a tenant's admins see the
tenant's, any member sees their own, platform admins all."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from llm_platform.auth.dependencies import PlatformAdminDep, PrincipalDep, TenantAdminDep, TenantDep
from llm_platform.core.db import SessionDep
from llm_platform.core.openapi_errors import errors
from tenants import usage
from tenants.schemas import UsageReport
from tenants.usage_writer import UsageSyncedDep

router = APIRouter(tags=["usage"])  # /admin/usage is declared first: /{tenant}/usage would match it

StartDay = Annotated[
    date | None, Query(alias="from", description="First UTC day (default: 1st of this month)")
]
EndDay = Annotated[date | None, Query(alias="to", description="Last UTC day, inclusive (default: today)")]


async def _report(session, query: usage.UsageQuery) -> UsageReport:  # type: ignore[no-untyped-def]
    rows = await usage.usage_rows(session, query)
    return UsageReport.model_validate(
        {
            "start": query.start,
            "end": query.end,
            "group_by": query.group_by,
            "rows": rows,
            "totals": usage.totals(rows),
        }
    )


def _range(start: date | None, end: date | None) -> tuple[date, date]:
    default_start, default_end = usage.month_to_date()
    return start or default_start, end or default_end


@router.get("/admin/usage", responses=errors(400))  # 400: a date range usage.py refuses
async def platform_usage(
    _: PlatformAdminDep,
    session: SessionDep,
    __: UsageSyncedDep,
    start: StartDay = None,
    end: EndDay = None,
    group_by: Literal["tenant", "day", "model"] = "tenant",
) -> UsageReport:
    first, last = _range(start, end)
    return await _report(session, usage.UsageQuery(first, last, group_by))


@router.get("/{tenant}/admin/usage", responses=errors(400))
async def tenant_usage(
    tenant: TenantDep,
    _: TenantAdminDep,
    session: SessionDep,
    __: UsageSyncedDep,
    start: StartDay = None,
    end: EndDay = None,
    group_by: Literal["day", "key", "model"] = "day",
) -> UsageReport:
    first, last = _range(start, end)
    return await _report(session, usage.UsageQuery(first, last, group_by, tenant_id=tenant.id))


@router.get("/{tenant}/usage", responses=errors(400))
async def own_usage(
    tenant: TenantDep,
    principal: PrincipalDep,
    session: SessionDep,
    _: UsageSyncedDep,
    start: StartDay = None,
    end: EndDay = None,
    group_by: Literal["day", "model"] = "day",
) -> UsageReport:
    """The caller's own usage: their API key's, or their own requests as a user."""
    first, last = _range(start, end)
    query = usage.UsageQuery(
        first, last, group_by, tenant_id=tenant.id, principal=(principal.kind, principal.id)
    )
    return await _report(session, query)
