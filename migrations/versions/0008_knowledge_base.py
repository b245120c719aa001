"""Knowledge base: collections, documents, chunks with their vectors, per-tenant index versions, and
full-text search (a GIN index on Postgres, an FTS5 table kept by triggers on SQLite)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "kb_collections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("kb_collections"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_collections")),
    )
    op.create_index("uq_kb_collections_tenant_name", "kb_collections", ["tenant_id", "name"], unique=True)
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("source_type", sa.String(length=16), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("kb_documents"),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["kb_collections.id"],
            name=op.f("fk_kb_documents_collection_id_kb_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_documents")),
    )
    op.create_index("ix_kb_documents_tenant_created", "kb_documents", ["tenant_id", "created_at", "id"])
    op.create_index(
        "uq_kb_documents_collection_hash", "kb_documents", ["collection_id", "content_hash"], unique=True
    )
    op.create_index("ix_kb_documents_status_lease", "kb_documents", ["status", "lease_until"])
    op.create_table(
        "kb_chunks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        _tenant_fk("kb_chunks"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["kb_documents.id"],
            name=op.f("fk_kb_chunks_document_id_kb_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_chunks")),
    )
    op.create_index("ix_kb_chunks_document", "kb_chunks", ["document_id", "chunk_index"])
    op.create_index("ix_kb_chunks_tenant", "kb_chunks", ["tenant_id", "collection_id"])
    op.create_table(
        "kb_versions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        _tenant_fk("kb_versions"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_kb_versions")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # A stored tsvector: ranking a match reads it instead of parsing the chunk's text again (a
        # question's ORed words match many chunks, and every match is ranked).
        op.execute(
            "ALTER TABLE kb_chunks ADD COLUMN text_search tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_kb_chunks_fts ON kb_chunks USING gin (text_search)")
    else:
        # An external-content FTS5 table: the text lives once, in kb_chunks; triggers keep the index.
        op.execute(
            "CREATE VIRTUAL TABLE kb_chunks_fts USING fts5("
            "text, content='kb_chunks', content_rowid='id', tokenize='porter unicode61')"
        )
        op.execute(
            "CREATE TRIGGER kb_chunks_fts_insert AFTER INSERT ON kb_chunks BEGIN "
            "INSERT INTO kb_chunks_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER kb_chunks_fts_delete AFTER DELETE ON kb_chunks BEGIN "
            "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_kb_chunks_fts")
        op.execute("ALTER TABLE kb_chunks DROP COLUMN text_search")
    else:
        op.execute("DROP TRIGGER kb_chunks_fts_delete")
        op.execute("DROP TRIGGER kb_chunks_fts_insert")
        op.execute("DROP TABLE kb_chunks_fts")
    op.drop_table("kb_versions")
    op.drop_index("ix_kb_chunks_tenant", table_name="kb_chunks")
    op.drop_index("ix_kb_chunks_document", table_name="kb_chunks")
    op.drop_table("kb_chunks")
    op.drop_index("ix_kb_documents_status_lease", table_name="kb_documents")
    op.drop_index("uq_kb_documents_collection_hash", table_name="kb_documents")
    op.drop_index("ix_kb_documents_tenant_created", table_name="kb_documents")
    op.drop_table("kb_documents")
    op.drop_table("kb_collections")
