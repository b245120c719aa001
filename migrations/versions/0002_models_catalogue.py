"""Model catalogue, with the bundled SmolLM2 registered

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:14:14.079003
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUNDLED_SMOLLM2_ID = uuid.UUID("00000000-0000-4000-8000-000000000135")


def upgrade() -> None:
    models = op.create_table(
        "models",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("chat", "embedding", name="modelkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "backend",
            sa.Enum("hf", "openai", name="modelbackend", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("base_url", sa.String(length=1000), nullable=True),
        sa.Column("context_length", sa.Integer(), nullable=False),
        sa.Column("default_params", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        models,
        [
            {
                "id": BUNDLED_SMOLLM2_ID,
                "name": "smollm2-135m",
                "kind": "chat",
                "backend": "hf",
                "source": "bundled:smollm2-135m",
                "base_url": None,
                "context_length": 8192,
                # SmolLM2's authors suggest a low temperature; 1.0 makes a 135M model ramble.
                "default_params": {"temperature": 0.2, "top_p": 0.9, "max_tokens": 512},
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("models")
