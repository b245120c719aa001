"""The knowledge base's read side: per-tenant FAISS indexes kept in step with the database, and search
(dense, lexical, or both fused by reciprocal rank fusion) with collection and metadata filters.

Before each search the tenant's version is read from the database (one primary-key lookup); an index
at an older version is brought up to date first: the chunks of documents no longer ready are removed,
those of documents newly ready are read (with their vectors) and added. So a change committed through
any process is seen by the next search on every process. A tenant's index is mutated, searched and
saved under its own lock: FAISS indexes are not safe to read while another thread changes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_platform.knowledge import lexical
from llm_platform.knowledge.embedding import TextEmbedder
from llm_platform.knowledge.index import TenantIndex, reciprocal_rank_fusion
from llm_platform.knowledge.models import Chunk, Collection, Document, DocumentStatus
from llm_platform.knowledge.schemas import Passage
from llm_platform.knowledge.service import current_version

logger = logging.getLogger(__name__)

# Reciprocal rank fusion's constant. The usual 60 suits long ranked lists; here the dense list ranks every
# chunk of the tenant while the lexical one holds only chunks that share a word with the query, so at 60
# the lexical list's first place (an exact part number, say) weighs hardly more than the dense list's
# tenth (1/61 against 1/70), and loses to a chunk that is fair in both. At 5 the top of each list counts
# (1/6 against 1/15). Measured on the evaluation set for 60, 20, 10 and 5: bench/RESULTS.md, "Knowledge
# base retrieval quality".
RRF_K = 5
MIN_CANDIDATES = 50  # per list, before fusion: fusion needs more than the top_k of each
SAVE_DELAY_S = 5.0  # changes in a burst are saved once
_LOAD_BATCH = 500  # documents whose chunks are read per query while catching up


class KnowledgeBase:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], embedder: TextEmbedder, index_dir: Path
    ) -> None:
        self._sessions = sessions
        self.embedder = embedder
        self._dir = index_dir
        self._indexes: dict[uuid.UUID, TenantIndex] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._saves: dict[uuid.UUID, asyncio.Task[None]] = {}

    async def retrieve(
        self, tenant_id: uuid.UUID, query: str, top_k: int, collections: list[str] | None
    ) -> list[Passage]:
        """The passages that best answer `query` (hybrid search), for grounding a chat answer."""
        return await self.search(tenant_id, query, top_k=top_k, collections=collections)

    async def search(
        self,
        tenant_id: uuid.UUID,
        query: str,
        *,
        top_k: int,
        collections: list[str] | None = None,
        mode: str = "hybrid",
        metadata: dict[str, object] | None = None,
    ) -> list[Passage]:
        depth = top_k if mode != "hybrid" else max(top_k * 4, MIN_CANDIDATES)
        dense_hits: list[tuple[int, float]] = []
        lexical_hits: list[tuple[int, float]] = []
        async with self._sessions() as session:
            collection_ids = await _collection_ids(session, tenant_id, collections)
            documents = await _allowed_documents(session, tenant_id, collection_ids, metadata)
            if documents == []:
                return []

            async def lexical_search() -> list[tuple[int, float]]:
                return await lexical.search(session, tenant_id, query, depth, collection_ids, documents)

            async def dense_search() -> list[tuple[int, float]]:
                vector = (await self.embedder.embed(str(tenant_id), [query]))[0]
                return await self._dense(tenant_id, vector, depth, documents)

            # Hybrid: the query's embedding (a worker's forward) and the full-text query run at once.
            if mode == "hybrid":
                dense_hits, lexical_hits = await asyncio.gather(dense_search(), lexical_search())
            elif mode == "dense":
                dense_hits = await dense_search()
            else:
                lexical_hits = await lexical_search()
        if mode == "hybrid":
            ranked = reciprocal_rank_fusion([[i for i, _ in dense_hits], [i for i, _ in lexical_hits]], RRF_K)
        else:
            ranked = dense_hits if mode == "dense" else lexical_hits
        return await self._passages(tenant_id, ranked[:top_k])

    async def _dense(
        self, tenant_id: uuid.UUID, vector: np.ndarray, k: int, documents: list[uuid.UUID] | None
    ) -> list[tuple[int, float]]:
        async with self._lock(tenant_id):
            index = await self._fresh(tenant_id)
            if index is None:
                return []
            allowed = set(documents) if documents is not None else None
            return await asyncio.to_thread(index.search, vector, k, allowed)

    def _lock(self, tenant_id: uuid.UUID) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    async def _fresh(self, tenant_id: uuid.UUID) -> TenantIndex | None:
        """The tenant's index at the database's version (the caller holds the tenant's lock)."""
        async with self._sessions() as session:
            version = await current_version(session, tenant_id)
            index = self._indexes.get(tenant_id)
            if index is None:
                index = await asyncio.to_thread(TenantIndex.load, self._path(tenant_id))
            if index is not None and index.version == version:
                self._indexes[tenant_id] = index
                return index
            index = await _catch_up(session, tenant_id, index)
        if index is None:
            return None
        index.version = version  # read before the documents: a change since then is caught next time
        self._indexes[tenant_id] = index
        self._save_soon(tenant_id)
        return index

    def _path(self, tenant_id: uuid.UUID) -> Path:
        return self._dir / f"{tenant_id}.faiss"  # the tenant's id, never anything a client named

    def _save_soon(self, tenant_id: uuid.UUID) -> None:
        if tenant_id not in self._saves:
            self._saves[tenant_id] = asyncio.create_task(self._save_later(tenant_id))

    async def _save_later(self, tenant_id: uuid.UUID) -> None:
        try:
            await asyncio.sleep(SAVE_DELAY_S)
        finally:
            self._saves.pop(tenant_id, None)
        await self.save(tenant_id)

    async def save(self, tenant_id: uuid.UUID) -> None:
        async with self._lock(tenant_id):
            index = self._indexes.get(tenant_id)
            if index is not None:
                try:
                    await asyncio.to_thread(index.save, self._path(tenant_id))
                except OSError as exc:  # the database still has everything: only a slower start
                    logger.warning("could not save the knowledge index of %s: %s", tenant_id, exc)

    async def close(self) -> None:
        """Saves what changed since the last save."""
        pending = list(self._saves.items())
        for tenant_id, task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.save(tenant_id)

    async def _passages(self, tenant_id: uuid.UUID, ranked: list[tuple[int, float]]) -> list[Passage]:
        if not ranked:
            return []
        async with self._sessions() as session:
            rows = await session.execute(
                select(
                    Chunk.id,
                    Chunk.document_id,
                    Chunk.chunk_index,
                    Chunk.text,
                    Document.title,
                    Collection.name,
                )
                .join(Document, Document.id == Chunk.document_id)
                .join(Collection, Collection.id == Chunk.collection_id)
                .where(Chunk.tenant_id == tenant_id, Chunk.id.in_([chunk_id for chunk_id, _ in ranked]))
            )
            found = {row[0]: row for row in rows.all()}
        return [
            Passage(
                document_id=found[chunk_id][1],
                title=found[chunk_id][4],
                collection=found[chunk_id][5],
                chunk_index=found[chunk_id][2],
                text=found[chunk_id][3],
                score=score,
            )
            for chunk_id, score in ranked
            if chunk_id in found  # a document deleted since the index was read
        ]


async def _collection_ids(
    session: AsyncSession, tenant_id: uuid.UUID, names: list[str] | None
) -> list[uuid.UUID] | None:
    if names is None:
        return None
    rows = await session.scalars(
        select(Collection.id).where(Collection.tenant_id == tenant_id, Collection.name.in_(names))
    )
    return list(rows.all())


async def _allowed_documents(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    collection_ids: list[uuid.UUID] | None,
    metadata: dict[str, object] | None,
) -> list[uuid.UUID] | None:
    """The ready documents a filter lets through (None: no filter, all of them). Metadata is compared
    here rather than in SQL: JSON equality differs between the databases, and a tenant's documents are
    few next to its chunks."""
    if collection_ids is None and not metadata:
        return None
    query = select(Document.id, Document.doc_metadata).where(
        Document.tenant_id == tenant_id, Document.status == DocumentStatus.ready
    )
    if collection_ids is not None:
        query = query.where(Document.collection_id.in_(collection_ids))
    rows = (await session.execute(query)).all()
    wanted = (metadata or {}).items()
    return [doc_id for doc_id, meta in rows if all((meta or {}).get(key) == value for key, value in wanted)]


async def _catch_up(
    session: AsyncSession, tenant_id: uuid.UUID, index: TenantIndex | None
) -> TenantIndex | None:
    """`index` (or a new one) with the chunks of exactly the tenant's ready documents."""
    ready = set(
        (
            await session.scalars(
                select(Document.id).where(
                    Document.tenant_id == tenant_id, Document.status == DocumentStatus.ready
                )
            )
        ).all()
    )
    if index is not None:
        for gone in set(index.documents) - ready:
            index.remove(gone)
    new = sorted(ready - set(index.documents if index is not None else ()))
    for start in range(0, len(new), _LOAD_BATCH):
        rows = (
            await session.execute(
                select(Chunk.document_id, Chunk.id, Chunk.vector)
                .where(Chunk.tenant_id == tenant_id, Chunk.document_id.in_(new[start : start + _LOAD_BATCH]))
                .order_by(Chunk.document_id, Chunk.chunk_index)
            )
        ).all()
        by_document: dict[uuid.UUID, list[tuple[int, bytes]]] = {}
        for document_id, chunk_id, vector in rows:
            by_document.setdefault(document_id, []).append((chunk_id, vector))
        for document_id, chunks in by_document.items():
            vectors = np.frombuffer(b"".join(v for _, v in chunks), dtype=np.float32).reshape(len(chunks), -1)
            if index is None:
                index = TenantIndex(vectors.shape[1])
            elif index.dim != vectors.shape[1]:  # embedded by another model: not comparable
                logger.warning("knowledge document %s has vectors of another size: left out", document_id)
                continue
            index.add(document_id, np.array([c for c, _ in chunks], dtype=np.int64), vectors)
    return index
