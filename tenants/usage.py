"""Usage accounting: one row per tenant, principal, model and UTC day, incremented atomically.

Postgres is the source of truth (the limiter's quota state is rebuilt from it). Increments are upserts,
so concurrent requests from several API replicas add up without a lost update.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.core.db import utcnow
from llm_platform.core.errors import BadRequest
from tenants.models import Tenant, UsageDaily

GROUPINGS = ("day", "key", "model", "tenant")
MAX_RANGE_DAYS = 366


@dataclass(frozen=True)
class UsageRecord:
    tenant_id: uuid.UUID
    principal_kind: str
    principal_id: uuid.UUID
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


async def record_usage(session: AsyncSession, record: UsageRecord, at: datetime | None = None) -> None:
    """Adds one request and its tokens to its UTC day's bucket, and commits."""
    await add_usage(session, [Increment.of(record, (at or datetime.now(UTC)).date())])
    await session.commit()


@dataclass(frozen=True)
class Bucket:
    tenant_id: uuid.UUID
    day: date
    model: str
    principal_kind: str
    principal_id: uuid.UUID


@dataclass
class Increment:
    bucket: Bucket
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_hits: int = 0

    @classmethod
    def of(cls, record: UsageRecord, day: date) -> Increment:
        bucket = Bucket(record.tenant_id, day, record.model, record.principal_kind, record.principal_id)
        return cls(bucket, 1, record.prompt_tokens, record.completion_tokens, int(record.cached))

    def add(self, other: Increment) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_hits += other.cached_hits


async def add_usage(session: AsyncSession, increments: list[Increment]) -> None:
    """Adds the increments to their buckets in one statement (an upsert: replicas add up without a lost
    update). The caller commits."""
    if not increments:
        return
    rows = [
        {
            "id": uuid.uuid4(),
            **asdict(increment.bucket),
            "requests": increment.requests,
            "prompt_tokens": increment.prompt_tokens,
            "completion_tokens": increment.completion_tokens,
            "cached_hits": increment.cached_hits,
            "updated_at": utcnow(),
        }
        for increment in increments
    ]
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(UsageDaily).values(rows)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "day", "model", "principal_kind", "principal_id"],
        set_={
            "requests": UsageDaily.requests + excluded.requests,
            "prompt_tokens": UsageDaily.prompt_tokens + excluded.prompt_tokens,
            "completion_tokens": UsageDaily.completion_tokens + excluded.completion_tokens,
            "cached_hits": UsageDaily.cached_hits + excluded.cached_hits,
            "updated_at": excluded.updated_at,
        },
    )
    await session.execute(statement)


@dataclass(frozen=True)
class UsageQuery:
    start: date
    end: date  # inclusive
    group_by: str = "day"
    tenant_id: uuid.UUID | None = None  # None: every tenant (platform admins)
    principal: tuple[str, uuid.UUID] | None = None  # only this user's or key's usage

    def __post_init__(self) -> None:
        if self.group_by not in GROUPINGS:
            raise BadRequest(
                f"group_by must be one of {', '.join(GROUPINGS)}", code="invalid_request", param="group_by"
            )
        if self.end < self.start:
            raise BadRequest("`to` is before `from`", code="invalid_request", param="to")
        if (self.end - self.start).days > MAX_RANGE_DAYS:
            raise BadRequest(
                f"A usage query spans at most {MAX_RANGE_DAYS} days", code="invalid_request", param="from"
            )


async def usage_rows(session: AsyncSession, query: UsageQuery) -> list[dict[str, object]]:
    """Sums per group, ordered by the group key."""
    group_columns = {
        "day": [UsageDaily.day],
        "model": [UsageDaily.model],
        "key": [UsageDaily.principal_kind, UsageDaily.principal_id],
        "tenant": [Tenant.slug],
    }[query.group_by]
    statement: Select = select(
        *group_columns,
        func.sum(UsageDaily.requests).label("requests"),
        func.sum(UsageDaily.prompt_tokens).label("prompt_tokens"),
        func.sum(UsageDaily.completion_tokens).label("completion_tokens"),
        func.sum(UsageDaily.cached_hits).label("cached_hits"),
    ).where(UsageDaily.day >= query.start, UsageDaily.day <= query.end)
    if query.group_by == "tenant":
        statement = statement.join(Tenant, Tenant.id == UsageDaily.tenant_id)
    if query.tenant_id is not None:
        statement = statement.where(UsageDaily.tenant_id == query.tenant_id)
    if query.principal is not None:
        kind, principal_id = query.principal
        statement = statement.where(
            UsageDaily.principal_kind == kind, UsageDaily.principal_id == principal_id
        )
    statement = statement.group_by(*group_columns).order_by(*group_columns)
    rows = []
    for row in (await session.execute(statement)).mappings():
        entry = {key: int(value) for key, value in row.items() if key in _SUMS}
        entry["total_tokens"] = entry["prompt_tokens"] + entry["completion_tokens"]
        if query.group_by == "day":
            entry["day"] = row["day"].isoformat()
        elif query.group_by == "model":
            entry["model"] = row["model"]
        elif query.group_by == "tenant":
            entry["tenant"] = row["slug"]
        else:
            entry["principal_kind"], entry["principal_id"] = row["principal_kind"], str(row["principal_id"])
        rows.append(entry)
    return rows


_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cached_hits")


def month_to_date(today: date | None = None) -> tuple[date, date]:
    """The default report range: the current UTC calendar month, up to today."""
    today = today or datetime.now(UTC).date()
    return today.replace(day=1), today


def totals(rows: list[dict[str, object]]) -> dict[str, int]:
    keys = (*_SUMS, "total_tokens")
    return {key: sum(int(row[key]) for row in rows) for key in keys}  # type: ignore[call-overload]


async def tokens_used(
    session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID | None, start: date, end: date
) -> int:
    """Tokens a tenant (or one of its API keys) used from `start` to `end` inclusive: what a quota
    counter is rebuilt from."""
    statement = select(
        func.coalesce(func.sum(UsageDaily.prompt_tokens + UsageDaily.completion_tokens), 0)
    ).where(UsageDaily.tenant_id == tenant_id, UsageDaily.day >= start, UsageDaily.day <= end)
    if key_id is not None:
        statement = statement.where(UsageDaily.principal_kind == "api_key", UsageDaily.principal_id == key_id)
    return int((await session.execute(statement)).scalar_one())
