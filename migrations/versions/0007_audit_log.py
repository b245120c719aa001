"""Audit log, hash-chained per tenant, and the chains' heads

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("chain", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("actor_kind", sa.String(length=16), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("key_prefix", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=512), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=True),
        sa.Column("response_sha256", sa.String(length=64), nullable=True),
        sa.Column("request_text", sa.Text(), nullable=True),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("uq_audit_log_chain_seq", "audit_log", ["chain", "seq"], unique=True)
    op.create_index("uq_audit_log_event_id", "audit_log", ["event_id"], unique=True)
    op.create_index("ix_audit_log_tenant_at", "audit_log", ["tenant_id", "at", "id"])
    op.create_index("ix_audit_log_tenant_action_at", "audit_log", ["tenant_id", "action", "at", "id"])
    op.create_index("ix_audit_log_tenant_actor_at", "audit_log", ["tenant_id", "actor_id", "at", "id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at", "id"])
    op.create_table(
        "audit_heads",
        sa.Column("chain", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("pruned_seq", sa.BigInteger(), nullable=False),
        sa.Column("pruned_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_heads")),
    )


def downgrade() -> None:
    op.drop_table("audit_heads")
    for index in (
        "ix_audit_log_at",
        "ix_audit_log_tenant_actor_at",
        "ix_audit_log_tenant_action_at",
        "ix_audit_log_tenant_at",
        "uq_audit_log_event_id",
        "uq_audit_log_chain_seq",
    ):
        op.drop_index(index, table_name="audit_log")
    op.drop_table("audit_log")
