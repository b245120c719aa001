"""API keys get limits of their own; daily token quotas; a tenant's fail mode when Redis is down

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY_LIMITS = (
    ("requests_per_minute", sa.Integer()),
    ("tokens_per_minute", sa.Integer()),
    ("concurrent_requests", sa.Integer()),
    ("monthly_token_quota", sa.BigInteger()),
    ("daily_token_quota", sa.BigInteger()),
)


def upgrade() -> None:
    for name, type_ in _KEY_LIMITS:
        op.add_column("api_keys", sa.Column(name, type_, nullable=True))
    op.add_column("tenant_limits", sa.Column("daily_token_quota", sa.BigInteger(), nullable=True))
    op.add_column(
        "tenant_limits",
        sa.Column("fail_mode", sa.String(length=32), nullable=False, server_default="open"),
    )


def downgrade() -> None:
    with op.batch_alter_table("tenant_limits") as batch:
        batch.drop_column("fail_mode")
        batch.drop_column("daily_token_quota")
    with op.batch_alter_table("api_keys") as batch:
        for name, _ in reversed(_KEY_LIMITS):
            batch.drop_column(name)
