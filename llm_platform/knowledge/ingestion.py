"""Ingestion in the background: a queued document is claimed (status `indexing` with a lease), cut into
chunks by the embedding model's tokens, embedded in batches, and its chunks written with their vectors
in one transaction that also makes it `ready` and bumps the tenant's index version.

A claim is a conditional UPDATE (the row is still queued, or its lease has run out), so two processes
never index one document, on Postgres and SQLite alike. The lease is renewed after every batch; a
process that dies leaves the lease to expire, and any process's next round (on start, then every
LLMP_KNOWLEDGE_POLL_S) takes the document up again. Each process also runs a round at once when a
document is added through it. An embedding model that cannot be reached leaves the document queued,
tried again later (and `failed` after MAX_ATTEMPTS); a document that cannot be chunked fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

import numpy as np
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_platform.core.db import DATABASE_UNREACHABLE, describe_error, utcnow
from llm_platform.core.errors import PlatformError
from llm_platform.core.settings import Settings
from llm_platform.knowledge import chunking
from llm_platform.knowledge.embedding import TextEmbedder
from llm_platform.knowledge.models import Chunk, Document, DocumentStatus
from llm_platform.knowledge.service import bump_version, content_hash, release_stale_leases
from llm_platform.metrics.api import ApiMetrics

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_AFTER_S = 10.0  # a document whose embedding failed waits this long, times its attempts


class Ingester:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        embedder: TextEmbedder,
        settings: Settings,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self._metrics = metrics or ApiMetrics()
        self._sessions = sessions
        self.embedder = embedder
        self._settings = settings
        self._lease = timedelta(seconds=settings.knowledge_lease_s)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="knowledge-ingestion")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self) -> None:
        """A document was added: look at once rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except DATABASE_UNREACHABLE as exc:
                logger.warning(
                    "knowledge ingestion paused: the database is unreachable (%s)", describe_error(exc)
                )
            except Exception:
                logger.exception("knowledge ingestion round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.knowledge_poll_s)
            self._wake.clear()

    async def run_once(self) -> int:
        """Ingests what is waiting (abandoned documents included); returns how many it finished."""
        async with self._sessions() as session:
            await release_stale_leases(session)
        done = 0
        while (document_id := await self._claim()) is not None:
            self._metrics.knowledge_ingestions[(await self._ingest(document_id),)].inc()
            done += 1
        return done

    async def _claim(self) -> uuid.UUID | None:
        now = utcnow()
        waiting = (Document.status == DocumentStatus.queued) & or_(
            Document.lease_until.is_(None), Document.lease_until < now
        )
        async with self._sessions() as session:
            candidates = await session.scalars(
                select(Document.id).where(waiting).order_by(Document.created_at).limit(8)
            )
            for document_id in candidates.all():
                claimed = await session.execute(
                    update(Document)
                    .where(Document.id == document_id, waiting)
                    .values(
                        status=DocumentStatus.indexing,
                        lease_until=now + self._lease,
                        attempts=Document.attempts + 1,
                    )
                )
                await session.commit()
                if claimed.rowcount:  # type: ignore[attr-defined]
                    return document_id
        return None

    async def _ingest(self, document_id: uuid.UUID) -> str:
        """Indexes one claimed document; returns what became of it (the ingestions metric's outcome)."""
        async with self._sessions() as session:
            columns = (Document.text, Document.tenant_id, Document.collection_id, Document.attempts)
            row = (await session.execute(select(*columns).where(Document.id == document_id))).first()
        if row is None:  # deleted meanwhile
            return "deleted"
        text, tenant_id, collection_id, attempts = row
        try:
            model = await self.embedder.model()
            size = min(self._settings.knowledge_chunk_tokens, model.max_tokens)
            pieces = await asyncio.to_thread(
                chunking.split,
                text or "",
                model.count_tokens,
                size,
                self._settings.knowledge_chunk_overlap_tokens,
            )
            if not pieces:
                await self._fail(document_id, "The document has no text to index")
                return "failed"
            vectors = await self._embed(document_id, str(tenant_id), pieces)
        except PlatformError as exc:  # the embedding model is unavailable or refused: try again later
            await self._retry(document_id, attempts, exc.message)
            return "retried"
        await self._finish(document_id, tenant_id, collection_id, pieces, vectors)
        return "indexed"

    async def _embed(self, document_id: uuid.UUID, tenant: str, pieces: list[str]) -> np.ndarray:
        batch = self._settings.knowledge_embed_batch
        parts = []
        for start in range(0, len(pieces), batch):
            parts.append(await self.embedder.embed(tenant, pieces[start : start + batch]))
            await self._renew(document_id)
        return np.concatenate(parts)

    async def _renew(self, document_id: uuid.UUID) -> None:
        async with self._sessions() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document_id, Document.status == DocumentStatus.indexing)
                .values(lease_until=utcnow() + self._lease)
            )
            await session.commit()

    async def _finish(
        self,
        document_id: uuid.UUID,
        tenant_id: uuid.UUID,
        collection_id: uuid.UUID,
        pieces: list[str],
        vectors: np.ndarray,
    ) -> None:
        async with self._sessions() as session:
            # Only if still ours: a document deleted, or taken over after our lease ran out, is left be.
            marked = await session.execute(
                update(Document)
                .where(Document.id == document_id, Document.status == DocumentStatus.indexing)
                .values(status=DocumentStatus.ready, chunks=len(pieces), lease_until=None, error=None)
            )
            if not marked.rowcount:  # type: ignore[attr-defined]
                await session.rollback()
                return
            session.add_all(
                Chunk(
                    tenant_id=tenant_id,
                    document_id=document_id,
                    collection_id=collection_id,
                    chunk_index=position,
                    text=piece,
                    content_hash=content_hash(piece),
                    vector=vectors[position].astype(np.float32).tobytes(),
                )
                for position, piece in enumerate(pieces)
            )
            await bump_version(session, tenant_id)
            await session.commit()

    async def _fail(self, document_id: uuid.UUID, reason: str) -> None:
        async with self._sessions() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(status=DocumentStatus.failed, error=reason[:500], lease_until=None)
            )
            await session.commit()

    async def _retry(self, document_id: uuid.UUID, attempts: int, reason: str) -> None:
        if attempts >= MAX_ATTEMPTS:
            await self._fail(document_id, f"Could not be embedded: {reason}")
            return
        logger.warning("knowledge document %s waits for its embedding model: %s", document_id, reason)
        async with self._sessions() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(
                    status=DocumentStatus.queued,
                    lease_until=utcnow() + timedelta(seconds=RETRY_AFTER_S * attempts),
                )
            )
            await session.commit()
