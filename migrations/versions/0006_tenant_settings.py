"""Tenant settings: response caching and the audit log's text policy

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("cache_enabled", sa.Boolean(), nullable=False),
        sa.Column("cache_ttl_s", sa.Integer(), nullable=False),
        sa.Column("cache_max_entry_bytes", sa.Integer(), nullable=False),
        sa.Column("cache_sampled", sa.Boolean(), nullable=False),
        sa.Column("audit_store_text", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_settings")),
    )


def downgrade() -> None:
    op.drop_table("tenant_settings")
