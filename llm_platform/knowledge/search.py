"""The knowledge base's read side: per-tenant indexes (FAISS in memory, tantivy on disk) kept in step with
the database, and search (dense, lexical, or both fused by reciprocal rank fusion) with collection and
metadata filters.

Before each search the tenant's version is read from the database (one primary-key lookup); an index
at an older version is brought up to date first: the chunks of documents no longer ready are removed,
those of documents newly ready are read (vectors and texts) and added. So a change committed through any
process is seen by the next search on every process. A tenant's index is changed and searched under its
own lock (FAISS indexes are not safe to read while another thread changes them), never while a query is
being embedded: the embedding (a worker's forward) runs beside the database reads and the lexical search.

The indexes held are bounded by their chunks in all (LLMP_KNOWLEDGE_MAX_INDEXED_CHUNKS): past it, the
least recently searched tenants' indexes are saved and dropped, to be loaded again at their next search.
A process saves the indexes it holds when it stops; a tenant's first search in a process loads what was
saved (store.py) and brings it up to date, or builds the index from the database if nothing was.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from sqlalchemy import bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from llm_platform.core.db import describe_error
from llm_platform.core.errors import ServiceUnavailable
from llm_platform.knowledge import lexical
from llm_platform.knowledge.embedding import TextEmbedder
from llm_platform.knowledge.index import TenantIndex, reciprocal_rank_fusion
from llm_platform.knowledge.models import Chunk, Collection, Document, DocumentStatus, IndexVersion
from llm_platform.knowledge.schemas import LEXICAL_ONLY, Passage, SearchResults
from llm_platform.knowledge.service import current_version
from llm_platform.knowledge.store import Home, IndexStore

logger = logging.getLogger(__name__)

# Reciprocal rank fusion's constant. The usual 60 suits long ranked lists; here the dense list ranks every
# chunk of the tenant while the lexical one holds only chunks that share a word with the query, so at 60
# the lexical list's first place (an exact part number, say) weighs hardly more than the dense list's
# tenth (1/61 against 1/70), and loses to a chunk that is fair in both. At 5 the top of each list counts
# (1/6 against 1/15). Measured on the evaluation set for 60, 20, 10 and 5: bench/RESULTS.md, "Knowledge
# base retrieval quality".
RRF_K = 5
MIN_CANDIDATES = 50  # per list, before fusion: fusion needs more than the top_k of each
_LOAD_BATCH = 500  # documents whose chunks are read (and indexed) at a time while catching up
# Reading a large tenant's rows leaves hundreds of MB freed but held by malloc's arenas: 100k chunks read
# and indexed took RSS up by 281 MB, of which malloc_trim handed 157 MB back (the indexes keep ~124 MB).
_TRIM_AFTER_CHUNKS = 10_000

# A search's reads, built once (building them per call cost ~0.4 ms of CPU in SQLAlchemy).
_PASSAGES = (
    select(Chunk.id, Chunk.document_id, Chunk.chunk_index, Chunk.text, Document.title, Collection.name)
    .join(Document, Document.id == Chunk.document_id)
    .join(Collection, Collection.id == Chunk.collection_id)
    .where(Chunk.tenant_id == bindparam("tenant_id"), Chunk.id.in_(bindparam("ids", expanding=True)))
)
_COLLECTION_IDS = select(Collection.id).where(
    Collection.tenant_id == bindparam("tenant_id"), Collection.name.in_(bindparam("names", expanding=True))
)
_READY_METADATA = select(Document.id, Document.doc_metadata).where(
    Document.tenant_id == bindparam("tenant_id"), Document.status == DocumentStatus.ready
)


class KnowledgeBase:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        embedder: TextEmbedder,
        max_indexed_chunks: int,
        ann_min_chunks: int,
        store: IndexStore | None = None,
    ) -> None:
        """`store`: where indexes are kept between processes (store.py); None: memory only."""
        self._sessions = sessions  # a catch-up reads the version and the documents in one transaction
        # A search's reads are single statements, each its own transaction: no BEGIN and ROLLBACK round
        # trips around each (measured on Postgres: the version and passages reads 2.2 -> 1.1 ms).
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.embedder = embedder
        # Least recently searched first. Past `max_indexed_chunks` in all, the least recently searched
        # tenants' indexes are dropped (the next search of one builds it again from the database); the
        # tenant just searched always stays, even alone over the limit.
        self._indexes: OrderedDict[uuid.UUID, TenantIndex] = OrderedDict()
        self._max_indexed_chunks = max_indexed_chunks
        self._ann_min_chunks = ann_min_chunks
        # Never dropped with an index: a search may still hold the lock while it reads the index.
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._store = store
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Deletes the kept indexes of tenants deleted meanwhile (their rows went with them)."""
        if self._store is None:
            return
        try:
            async with self._reads.connect() as reads:
                tenants = set((await reads.scalars(select(IndexVersion.tenant_id))).all())
            deleted = await asyncio.to_thread(self._store.sweep, tenants)
        except (SQLAlchemyError, OSError) as exc:  # the next start sweeps; nothing depends on it
            logger.warning("kept knowledge indexes not swept: %s", describe_error(exc))
            return
        if deleted:
            logger.info("deleted %d kept knowledge indexes of tenants that are gone", deleted)

    async def close(self) -> None:
        """Saves every index this process holds (the next process loads them instead of rebuilding)."""
        await asyncio.gather(*self._retiring)
        while self._indexes:
            tenant_id, index = self._indexes.popitem()
            await self._retire(tenant_id, index)

    def indexed_chunks(self) -> dict[uuid.UUID, int]:
        """The chunks each tenant's index holds in this process's memory, least recently searched first."""
        return {tenant_id: len(index) for tenant_id, index in self._indexes.items()}

    async def retrieve(
        self, tenant_id: uuid.UUID, query: str, top_k: int, collections: list[str] | None
    ) -> SearchResults:
        """The passages that best answer `query`, for grounding a chat answer: a hybrid search (by words
        alone while the embedding model is unavailable, saying so in `degraded`)."""
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
    ) -> SearchResults:
        """The best `top_k` passages. A hybrid search while the embedding model is unavailable answers
        with the lexical list alone, saying so (`degraded`); a dense one raises ServiceUnavailable."""
        depth = top_k if mode != "hybrid" else max(top_k * 4, MIN_CANDIDATES)
        # The query's embedding (a worker's forward, the longest leg) starts first and runs while the
        # database is read and the lexical index searched.
        embedding = (
            asyncio.ensure_future(self.embedder.embed(str(tenant_id), [query])) if mode != "lexical" else None
        )
        try:
            async with self._reads.connect() as reads:
                version = await current_version(reads, tenant_id)
                collection_ids = await _collection_ids(reads, tenant_id, collections)
                matching = await _documents_with_metadata(reads, tenant_id, metadata) if metadata else None
            if collection_ids == [] or matching == []:
                return SearchResults(data=[])
            async with self._lock(tenant_id):
                index = await self._fresh(tenant_id, version)
                if index is None:
                    return SearchResults(data=[])
                allowed = index.allowed(collection_ids, matching)
                lexical_hits = (
                    await asyncio.to_thread(index.lexical.search, lexical.terms(query), depth, allowed)
                    if mode != "dense"
                    else []
                )
            dense_hits: list[tuple[int, float]] = []
            degraded = None
            if embedding is not None:
                try:
                    vector = (await embedding)[0]
                except ServiceUnavailable:
                    if mode == "dense":
                        raise
                    # Words alone find exact terms still; a search that fails helps no one.
                    logger.warning(
                        "knowledge search of tenant %s answered by words only: its embedding model is "
                        "unavailable",
                        tenant_id,
                    )
                    degraded = LEXICAL_ONLY
                else:
                    async with self._lock(tenant_id):  # documents gone meanwhile: skipped by `index.search`
                        dense_hits = await asyncio.to_thread(index.search, vector, depth, allowed)
        finally:
            if embedding is not None and not embedding.done():
                embedding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await embedding
            elif embedding is not None and not embedding.cancelled():
                embedding.exception()  # seen: a failure here is reported by what raised, or handled above
        if mode == "hybrid":
            ranked = reciprocal_rank_fusion([[i for i, _ in dense_hits], [i for i, _ in lexical_hits]], RRF_K)
        else:
            ranked = dense_hits if mode == "dense" else lexical_hits
        return SearchResults(data=await self._passages(tenant_id, ranked[:top_k]), degraded=degraded)

    def _lock(self, tenant_id: uuid.UUID) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    async def _fresh(self, tenant_id: uuid.UUID, version: int) -> TenantIndex | None:
        """The tenant's index at `version` or later (the caller holds the tenant's lock)."""
        index = self._indexes.get(tenant_id)
        if index is not None and index.version >= version:
            self._indexes.move_to_end(tenant_id)
            return index
        store, saved, made = self._store, None, []
        if index is None and store is not None:
            try:
                saved = await asyncio.to_thread(store.claim_saved, tenant_id)
            except OSError as exc:  # kept indexes are a cache: without them, the database
                logger.warning("kept knowledge indexes of tenant %s unreadable: %s", tenant_id, exc)
            if saved is not None and (index := await asyncio.to_thread(saved.load, self._ann_min_chunks)):
                logger.info("knowledge index of tenant %s loaded from disk: %d chunks", tenant_id, len(index))

        def make_home() -> Home | None:
            """Where a new index of the tenant is kept: a home whose snapshot could not be read (emptied
            by `load`), else a new one; none without a store, or where none can be made (the index is
            then held in memory alone, as before indexes were kept)."""
            if saved is not None:
                return saved
            if store is None:
                return None
            try:
                made.append(store.new_home(tenant_id))
            except OSError as exc:
                logger.warning("knowledge index of tenant %s held in memory only: %s", tenant_id, exc)
                return None
            return made[-1]

        try:
            async with self._sessions() as session:
                version = await current_version(session, tenant_id)  # read before the documents
                index = await _catch_up(session, tenant_id, index, self._ann_min_chunks, make_home)
        except BaseException:
            # Never held: free for a later claim (one this catch-up changed has lost its state: rebuilt).
            for home in [saved, *made]:
                if home is not None:
                    home.release()
            raise
        if index is None:  # nothing to index (a home made here would belong to an index)
            if saved is not None:
                saved.release(delete=True)
            return None
        index.version = version  # a change since then is caught next time
        self._indexes[tenant_id] = index
        self._indexes.move_to_end(tenant_id)
        self._evict()
        return index

    def _evict(self) -> None:
        held = sum(len(index) for index in self._indexes.values())
        while held > self._max_indexed_chunks and len(self._indexes) > 1:
            tenant_id, dropped = self._indexes.popitem(last=False)
            held -= len(dropped)
            if dropped.home is not None:  # saved once no search reads it, to be loaded at its next one
                task = asyncio.create_task(self._retire(tenant_id, dropped))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)

    async def _retire(self, tenant_id: uuid.UUID, index: TenantIndex) -> None:
        """Saves an index no longer held and lets its home go (under the tenant's lock: a search that
        still reads it finishes first, and the tenant's next search claims the home after)."""
        home = index.home
        if home is None:
            return
        async with self._lock(tenant_id):
            try:
                if not index.saved:
                    await asyncio.to_thread(home.save, index)
            except (OSError, RuntimeError) as exc:  # FAISS's writer raises RuntimeError
                # A full disk costs the next start a rebuild, nothing else.
                logger.warning("knowledge index of tenant %s not saved: %s", tenant_id, exc)
            finally:
                home.release()

    async def _passages(self, tenant_id: uuid.UUID, ranked: list[tuple[int, float]]) -> list[Passage]:
        if not ranked:
            return []
        async with self._reads.connect() as connection:
            rows = await connection.execute(
                _PASSAGES, {"tenant_id": tenant_id, "ids": [chunk_id for chunk_id, _ in ranked]}
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
    connection: AsyncConnection, tenant_id: uuid.UUID, names: list[str] | None
) -> list[uuid.UUID] | None:
    if names is None:
        return None
    rows = await connection.scalars(_COLLECTION_IDS, {"tenant_id": tenant_id, "names": names})
    return list(rows.all())


async def _documents_with_metadata(
    connection: AsyncConnection, tenant_id: uuid.UUID, metadata: dict[str, object]
) -> list[uuid.UUID]:
    """The ready documents whose metadata holds every key and value asked for. Compared here rather than
    in SQL: JSON equality differs between the databases, and a tenant's documents are few next to its
    chunks."""
    rows = (await connection.execute(_READY_METADATA, {"tenant_id": tenant_id})).all()
    wanted = metadata.items()
    return [doc_id for doc_id, meta in rows if all((meta or {}).get(key) == value for key, value in wanted)]


async def _catch_up(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    index: TenantIndex | None,
    ann_min_chunks: int,
    make_home: Callable[[], Home | None] = lambda: None,
) -> TenantIndex | None:
    """`index` (or a new one, kept in `make_home()`) with the chunks of exactly the tenant's ready
    documents. The indexing runs in a thread, a batch of documents at a time: a large catch-up does not
    hold up the event loop."""
    ready = set(
        (
            await session.scalars(
                select(Document.id).where(
                    Document.tenant_id == tenant_id, Document.status == DocumentStatus.ready
                )
            )
        ).all()
    )
    gone = set(index.documents) - ready if index is not None else set()
    new = sorted(ready - set(index.documents if index is not None else ()))
    if index is not None and gone:
        await asyncio.to_thread(_remove, index, gone)
    added = 0
    for start in range(0, len(new), _LOAD_BATCH):
        rows = (
            await session.execute(
                select(Chunk.document_id, Chunk.collection_id, Chunk.id, Chunk.vector, Chunk.text)
                .where(Chunk.tenant_id == tenant_id, Chunk.document_id.in_(new[start : start + _LOAD_BATCH]))
                .order_by(Chunk.document_id, Chunk.chunk_index)
            )
        ).all()
        added += len(rows)
        index = await asyncio.to_thread(_add, index, rows, ann_min_chunks, make_home)
        del rows
    if added >= _TRIM_AFTER_CHUNKS:
        await asyncio.to_thread(_return_freed_memory)
    return index


def _return_freed_memory() -> None:
    """glibc's malloc_trim: memory freed after a large catch-up goes back to the system (not on other
    C libraries, where this does nothing)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _remove(index: TenantIndex, documents: set[uuid.UUID]) -> None:
    for document_id in documents:
        index.remove(document_id)
    index.commit()


def _add(
    index: TenantIndex | None,
    rows: list,  # type: ignore[type-arg]
    ann_min_chunks: int,
    make_home: Callable[[], Home | None] = lambda: None,
) -> TenantIndex | None:
    """`rows` (document, collection, chunk id, vector, text; a document's chunks together, in order)
    added to `index`, or to a new one sized by their vectors."""
    by_document: dict[uuid.UUID, list] = {}  # type: ignore[type-arg]
    for row in rows:
        by_document.setdefault(row[0], []).append(row)
    for document_id, chunks in by_document.items():
        vectors = np.frombuffer(b"".join(c[3] for c in chunks), dtype=np.float32).reshape(len(chunks), -1)
        if index is None:
            index = TenantIndex(vectors.shape[1], ann_min_chunks, home=make_home())
        elif index.dim != vectors.shape[1]:  # embedded by another model: not comparable
            logger.warning("knowledge document %s has vectors of another size: left out", document_id)
            continue
        ids = np.array([c[2] for c in chunks], dtype=np.int64)
        index.add(document_id, chunks[0][1], ids, vectors, [c[4] for c in chunks])
    if index is not None:
        index.commit()
    return index
