"""Appending to the per-tenant hash chains, and walking them to verify.

Several API processes append at once. Each batch locks the head row of every chain it touches
(`SELECT ... FOR UPDATE`, chains in sorted order so two writers cannot deadlock), numbers and hashes
its rows after the head, inserts them and moves the head, in one transaction: a chain is extended by
one writer at a time and never forks. (SQLite, the embedded single process, serializes writers itself.)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from itertools import groupby

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.audit.models import GENESIS_HASH, PLATFORM_CHAIN, AuditHead, AuditRecord


@dataclass
class AuditEntry:
    """One API action, as the middleware (or a handler) saw it."""

    at: datetime
    action: str
    resource: str
    status: int
    latency_ms: int
    event_id: uuid.UUID
    tenant_id: uuid.UUID | None = None
    actor_kind: str | None = None
    actor_id: uuid.UUID | None = None
    key_prefix: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_hit: bool | None = None
    client_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    request_sha256: str | None = None
    response_sha256: str | None = None
    request_text: str | None = None
    response_text: str | None = None

    @property
    def chain(self) -> str:
        return str(self.tenant_id) if self.tenant_id else PLATFORM_CHAIN

    def values(self) -> dict[str, object]:
        # Every field is a scalar: a shallow copy, not dataclasses.asdict's deep one (3x the CPU).
        return {name: getattr(self, name) for name in _ENTRY_FIELDS}

    def to_json(self) -> str:
        return json.dumps(self.values(), default=str)

    @classmethod
    def from_json(cls, line: str) -> AuditEntry:
        data = json.loads(line)
        data["at"] = datetime.fromisoformat(data["at"])
        data["event_id"] = uuid.UUID(data["event_id"])
        for name in ("tenant_id", "actor_id"):
            data[name] = uuid.UUID(data[name]) if data[name] else None
        return cls(**data)


_ENTRY_FIELDS = [field.name for field in fields(AuditEntry)]


def row_hash(values: dict[str, object]) -> str:
    """SHA-256 over the row's content (every column but id and row_hash), previous hash included."""
    content = {name: values[name] for name in (*_ENTRY_FIELDS, "chain", "seq", "prev_hash")}
    content["at"] = _timestamp(content["at"])  # type: ignore[arg-type]
    canonical = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _timestamp(moment: datetime) -> str:
    # In UTC, as it is read back: an entry stamped in another zone must hash the same when verified.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


async def append(session: AsyncSession, entries: Sequence[AuditEntry], *, replay: bool = False) -> int:
    """Chains and inserts the entries, and commits. A replay (from the spool) first drops entries
    already stored, by event id. Returns how many rows were added."""
    if replay:
        ids = [entry.event_id for entry in entries]
        stored = set(
            (await session.scalars(select(AuditRecord.event_id).where(AuditRecord.event_id.in_(ids)))).all()
        )
        entries = [entry for entry in entries if entry.event_id not in stored]
    rows: list[dict[str, object]] = []
    heads: dict[str, tuple[int, str]] = {}
    for chain, group in groupby(
        sorted(entries, key=lambda entry: entry.chain), key=lambda entry: entry.chain
    ):
        seq, previous = await _locked_head(session, chain)
        for entry in group:  # sorted() is stable: a chain's rows keep their arrival order
            seq += 1
            values = {**entry.values(), "chain": chain, "seq": seq, "prev_hash": previous}
            previous = row_hash(values)
            values["row_hash"] = previous
            rows.append(values)
        heads[chain] = (seq, previous)
    if rows:
        await _insert(session, rows)
    for chain, (seq, last) in heads.items():
        await session.execute(update(AuditHead).where(AuditHead.chain == chain).values(seq=seq, hash=last))
    await session.commit()
    return len(rows)


ROW_COLUMNS = [*_ENTRY_FIELDS, "chain", "seq", "prev_hash", "row_hash"]  # what a row is written with


async def _insert(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # COPY, in the session's transaction, rather than SQLAlchemy's executemany, whose per-row
        # parameter handling is the writer's largest cost, and the writer shares the API's event loop
        # (figures: bench/RESULTS.md, gateway, third round).
        connection = await (await session.connection()).get_raw_connection()
        async with connection.driver_connection.cursor() as cursor:
            statement = f"COPY {AuditRecord.__tablename__} ({', '.join(ROW_COLUMNS)}) FROM STDIN"
            async with cursor.copy(statement) as copy:
                for row in rows:
                    await copy.write_row([row[column] for column in ROW_COLUMNS])
    else:  # SQLite, the embedded single process: a Core executemany (the ORM's bulk path cost twice)
        await session.execute(insert(AuditRecord.__table__), rows)


# The chain's end, its row locked until commit (created if new): one statement, since an upsert that
# updates takes the row lock and RETURNING reads it. Written out once, for Postgres and SQLite alike:
# SQLAlchemy compiles its dialect-specific INSERT ... ON CONFLICT afresh on every execution (the dialect
# Insert sets inherit_cache = False), a cost every batch would pay.
_LOCK_HEAD = text(
    "INSERT INTO audit_heads (chain, seq, hash, pruned_seq, pruned_hash) "
    "VALUES (:chain, 0, :genesis, 0, :genesis) "
    "ON CONFLICT (chain) DO UPDATE SET chain = excluded.chain RETURNING seq, hash"
)


async def _locked_head(session: AsyncSession, chain: str) -> tuple[int, str]:
    seq, last = (await session.execute(_LOCK_HEAD, {"chain": chain, "genesis": GENESIS_HASH})).one()
    return int(seq), str(last)


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int  # rows checked
    first_bad_seq: int | None = None
    first_bad_id: int | None = None
    reason: str | None = None


async def verify(session: AsyncSession, chain: str) -> Verification:
    """Walks the chain in order (streamed, so memory stays flat whatever its length): every row must
    follow the previous one without a gap, link to its hash, and hash to what it says."""
    head = await session.get(AuditHead, chain)
    if head is None:
        return Verification(ok=True, rows=0)
    expected_seq, expected_prev, count = head.pruned_seq + 1, head.pruned_hash, 0
    result = await session.stream_scalars(
        select(AuditRecord)
        .where(AuditRecord.chain == chain, AuditRecord.seq > head.pruned_seq)
        .order_by(AuditRecord.seq)
        .execution_options(yield_per=1000)
    )
    async for row in result:
        values = {column: getattr(row, column) for column in (*_ENTRY_FIELDS, "chain", "seq", "prev_hash")}
        if row.seq != expected_seq:
            return Verification(False, count, expected_seq, row.id, f"row {expected_seq} is missing")
        if row.prev_hash != expected_prev:
            return Verification(False, count, row.seq, row.id, "the link to the previous row is broken")
        if row_hash(values) != row.row_hash:
            return Verification(False, count, row.seq, row.id, "the row was changed after it was written")
        expected_seq, expected_prev, count = row.seq + 1, row.row_hash, count + 1
        session.expunge(row)  # keep the identity map from growing with the walk
    if expected_seq - 1 != head.seq or expected_prev != head.hash:
        return Verification(
            False, count, expected_seq, None, f"rows {expected_seq} to {head.seq} are missing"
        )
    return Verification(ok=True, rows=count)
