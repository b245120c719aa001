"""Knowledge-base full-text search moves into the API process (tantivy): the database's full-text index
(Postgres: the stored tsvector column and its GIN index; SQLite: the FTS5 table and its triggers) goes

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 16:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_kb_chunks_fts")
        op.execute("ALTER TABLE kb_chunks DROP COLUMN text_search")
    else:
        op.execute("DROP TRIGGER kb_chunks_fts_delete")
        op.execute("DROP TRIGGER kb_chunks_fts_insert")
        op.execute("DROP TABLE kb_chunks_fts")


def downgrade() -> None:
    # As migration 0008 made them; the FTS5 table is filled again from kb_chunks ('rebuild').
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE kb_chunks ADD COLUMN text_search tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_kb_chunks_fts ON kb_chunks USING gin (text_search)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE kb_chunks_fts USING fts5("
            "text, content='kb_chunks', content_rowid='id', tokenize='porter unicode61')"
        )
        op.execute("INSERT INTO kb_chunks_fts(kb_chunks_fts) VALUES ('rebuild')")
        op.execute(
            "CREATE TRIGGER kb_chunks_fts_insert AFTER INSERT ON kb_chunks BEGIN "
            "INSERT INTO kb_chunks_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER kb_chunks_fts_delete AFTER DELETE ON kb_chunks BEGIN "
            "INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
