"""The audit log: one row per API action, chained per tenant by hashes (tamper evidence)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llm_platform.core.db import Base

# Rows of actions outside any tenant (a platform admin's login, say) form a chain of their own.
PLATFORM_CHAIN = "platform"
GENESIS_HASH = "0" * 64


class AuditRecord(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("uq_audit_log_chain_seq", "chain", "seq", unique=True),
        Index("uq_audit_log_event_id", "event_id", unique=True),  # replays from the spool stay exactly-once
        # The listings' filters: a tenant (or everyone) over a time range, optionally one action or actor.
        Index("ix_audit_log_tenant_at", "tenant_id", "at", "id"),
        Index("ix_audit_log_tenant_action_at", "tenant_id", "action", "at", "id"),
        Index("ix_audit_log_tenant_actor_at", "tenant_id", "actor_id", "at", "id"),
        Index("ix_audit_log_at", "at", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    chain: Mapped[str] = mapped_column(String(36))  # the tenant's id, or PLATFORM_CHAIN
    seq: Mapped[int] = mapped_column(BigInteger)  # position in the chain, from 1, without gaps
    event_id: Mapped[uuid.UUID]
    at: Mapped[datetime]
    tenant_id: Mapped[uuid.UUID | None]  # no foreign key: the log outlives what it describes
    actor_kind: Mapped[str | None] = mapped_column(String(16))  # user | api_key
    actor_id: Mapped[uuid.UUID | None]
    key_prefix: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(512))
    status: Mapped[int]
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    latency_ms: Mapped[int]
    cache_hit: Mapped[bool | None]
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(128))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    response_sha256: Mapped[str | None] = mapped_column(String(64))
    request_text: Mapped[str | None] = mapped_column(Text)  # only where the tenant's policy keeps text
    response_text: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The end of each chain (its last seq and hash), locked while rows are appended; and where pruning
    cut it, so what is left still verifies."""

    __tablename__ = "audit_heads"

    chain: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)
    pruned_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    pruned_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)
