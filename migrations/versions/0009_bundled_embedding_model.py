"""The bundled all-MiniLM-L6-v2 registered as an embedding model

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00.000000
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUNDLED_MINILM_ID = uuid.UUID("00000000-0000-4000-8000-000000000384")
NAME = "all-minilm-l6-v2"

# The columns this migration writes, as they are at this revision (not the application's model class,
# which may change after it).
_models = sa.table(
    "models",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("backend", sa.String()),
    sa.column("source", sa.String()),
    sa.column("base_url", sa.String()),
    sa.column("context_length", sa.Integer()),
    sa.column("default_params", sa.JSON()),
    sa.column("enabled", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # An operator may have registered a model under this name already: theirs stays.
    exists = op.get_bind().execute(sa.select(_models.c.id).where(_models.c.name == NAME)).first()
    if exists is not None:
        return
    now = datetime.now(UTC)
    op.bulk_insert(
        _models,
        [
            {
                "id": BUNDLED_MINILM_ID,
                "name": NAME,
                "kind": "embedding",
                "backend": "hf",
                "source": f"bundled:{NAME}",
                "base_url": None,
                # Its sentence-transformers max_seq_length: it was trained on at most 256 tokens.
                "context_length": 256,
                "default_params": {},
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.execute(sa.delete(_models).where(_models.c.id == BUNDLED_MINILM_ID))
