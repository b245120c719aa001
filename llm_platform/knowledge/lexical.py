"""Lexical search over a tenant's chunks: Postgres full-text search (the GIN index over the stored
`to_tsvector('english', text)` column `text_search`, ranked by ts_rank) or, embedded, SQLite FTS5
(porter stemming, ranked by bm25). A question's words are ORed, not ANDed: a passage that holds the rare
term asked about is found even when it words the rest of the question differently, and more matching
words rank higher."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import Select, column, func, literal_column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.knowledge.models import Chunk

_TERMS = re.compile(r"[^\W_]+")
MAX_TERMS = 64
_ENGLISH = literal_column("'english'")  # the configuration the stored column was made with
_TEXT_SEARCH = literal_column("kb_chunks.text_search")  # written by Postgres (migration 0008), unmapped
_FTS = table("kb_chunks_fts", column("rowid"))


def terms(query: str) -> list[str]:
    """The query's words, lower-cased, each once, in order (letters and digits only: nothing of the
    query syntax of either database gets through)."""
    seen: dict[str, None] = {}
    for term in _TERMS.findall(query.lower()):
        seen.setdefault(term, None)
    return list(seen)[:MAX_TERMS]


async def search(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    query: str,
    k: int,
    collection_ids: list[uuid.UUID] | None,
    document_ids: list[uuid.UUID] | None,
) -> list[tuple[int, float]]:
    """The `k` best chunks as (chunk id, rank score), best first."""
    words = terms(query)
    if not words or k <= 0:
        return []
    postgres = session.get_bind().dialect.name == "postgresql"
    statement = _postgres(words) if postgres else _sqlite(words)
    statement = statement.where(Chunk.tenant_id == tenant_id)
    if collection_ids is not None:
        statement = statement.where(Chunk.collection_id.in_(collection_ids))
    if document_ids is not None:
        statement = statement.where(Chunk.document_id.in_(document_ids))
    rows = await session.execute(statement.limit(k))
    return [(int(chunk_id), float(score)) for chunk_id, score in rows.all()]


def _postgres(words: list[str]) -> Select:
    document = _TEXT_SEARCH
    wanted = func.to_tsquery(_ENGLISH, " | ".join(words))
    rank = func.ts_rank(document, wanted)
    return select(Chunk.id, rank).where(document.op("@@")(wanted)).order_by(rank.desc(), Chunk.id)


def _sqlite(words: list[str]) -> Select:
    match = " OR ".join(f'"{word}"' for word in words)
    bm25 = func.bm25(literal_column("kb_chunks_fts"))  # lower is better
    return (
        select(Chunk.id, -bm25)
        .join_from(_FTS, Chunk, Chunk.id == _FTS.c.rowid)
        .where(literal_column("kb_chunks_fts").op("MATCH")(match))
        .order_by(bm25, Chunk.id)
    )
