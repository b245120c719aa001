"""Reading the audit log (filters, keyset pagination) and pruning it without breaking its chains."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.audit.models import AuditHead, AuditRecord
from llm_platform.core import cursors

MAX_PAGE = 500


@dataclass(frozen=True)
class AuditQuery:
    tenant_id: uuid.UUID | None = None  # None: every tenant (platform admins)
    start: datetime | None = None
    end: datetime | None = None
    actor_id: uuid.UUID | None = None
    action: str | None = None
    status: int | None = None
    cursor: str | None = None
    limit: int = 100


async def list_records(session: AsyncSession, query: AuditQuery) -> tuple[list[AuditRecord], str | None]:
    """Newest first. The cursor names the last row of the page: (at, id), so a deep page costs what the
    first one does (an index range scan, no OFFSET)."""
    statement = select(AuditRecord)
    if query.tenant_id is not None:
        statement = statement.where(AuditRecord.tenant_id == query.tenant_id)
    if query.start is not None:
        statement = statement.where(AuditRecord.at >= query.start)
    if query.end is not None:
        statement = statement.where(AuditRecord.at < query.end)
    if query.actor_id is not None:
        statement = statement.where(AuditRecord.actor_id == query.actor_id)
    if query.action is not None:
        statement = statement.where(AuditRecord.action == query.action)
    if query.status is not None:
        statement = statement.where(AuditRecord.status == query.status)
    if query.cursor is not None:
        statement = statement.where(cursors.older_than(AuditRecord.at, AuditRecord.id, query.cursor, int))
    limit = min(max(query.limit, 1), MAX_PAGE)
    statement = statement.order_by(AuditRecord.at.desc(), AuditRecord.id.desc()).limit(limit + 1)
    rows = (await session.scalars(statement)).all()
    return cursors.cut(rows, limit, lambda row: (row.at, row.id))


async def prune(session: AsyncSession, before: datetime) -> int:
    """Deletes each chain's rows older than `before`, as a prefix of the chain (a newer row stops the
    cut), and records the hash of the last pruned row so what is left still verifies. Returns how
    many rows went."""
    removed = 0
    for chain in (await session.scalars(select(AuditHead.chain))).all():
        head = await session.scalar(
            select(AuditHead)
            .where(AuditHead.chain == chain)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert head is not None
        first_kept = await session.scalar(
            select(func.min(AuditRecord.seq)).where(
                AuditRecord.chain == chain, AuditRecord.seq > head.pruned_seq, AuditRecord.at >= before
            )
        )
        cut = (first_kept - 1) if first_kept is not None else head.seq
        if cut > head.pruned_seq:
            last_hash = await session.scalar(
                select(AuditRecord.row_hash).where(AuditRecord.chain == chain, AuditRecord.seq == cut)
            )
            result = await session.execute(
                delete(AuditRecord).where(AuditRecord.chain == chain, AuditRecord.seq <= cut)
            )
            removed += result.rowcount or 0  # type: ignore[attr-defined]
            head.pruned_seq, head.pruned_hash = cut, last_hash or head.pruned_hash
        await session.commit()
    return removed
