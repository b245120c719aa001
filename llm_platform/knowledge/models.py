"""SQLAlchemy models of the knowledge base: collections, documents, chunks (text, position, content hash
and vector) and each tenant's index version. The indexes that search them live in each API process
(`index.py`), built from these rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llm_platform.core.db import Base, UUIDPrimaryKey, str_enum, utcnow

DEFAULT_COLLECTION = "default"


class DocumentStatus(StrEnum):
    queued = "queued"
    indexing = "indexing"
    ready = "ready"
    failed = "failed"


class Collection(UUIDPrimaryKey, Base):
    __tablename__ = "kb_collections"
    __table_args__ = (Index("uq_kb_collections_tenant_name", "tenant_id", "name", unique=True),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Document(UUIDPrimaryKey, Base):
    """An uploaded document and its ingestion. `text` is what extraction found: ingestion (and its
    retry after a crash) starts from it, so the upload itself is never kept."""

    __tablename__ = "kb_documents"
    __table_args__ = (
        Index("ix_kb_documents_tenant_created", "tenant_id", "created_at", "id"),
        # Identical content into the same collection is one document.
        Index("uq_kb_documents_collection_hash", "collection_id", "content_hash", unique=True),
        Index("ix_kb_documents_status_lease", "status", "lease_until"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    collection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("kb_collections.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300))
    source_type: Mapped[str] = mapped_column(String(16))  # txt, md, html, pdf, json
    doc_metadata: Mapped[dict[str, object]] = mapped_column("metadata", JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the extracted text
    size_bytes: Mapped[int] = mapped_column("bytes", Integer)  # of the upload as sent
    text: Mapped[str] = mapped_column(Text, deferred=True)
    status: Mapped[DocumentStatus] = mapped_column(str_enum(DocumentStatus))
    error: Mapped[str | None] = mapped_column(String(500))
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # indexing: the claim expires then (another process takes it over); queued: not before then.
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Chunk(Base):
    """A passage of a ready document. The id is the vector's id in the tenant's FAISS index (int64)."""

    __tablename__ = "kb_chunks"
    __table_args__ = (
        Index("ix_kb_chunks_document", "document_id", "chunk_index"),
        Index("ix_kb_chunks_tenant", "tenant_id", "collection_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("kb_documents.id", ondelete="CASCADE"))
    collection_id: Mapped[uuid.UUID]
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, L2-normalised, native byte order


class IndexVersion(Base):
    """Bumped in the transaction of every change to a tenant's chunks: a process whose in-memory index
    is at an older version brings it up to date before it searches."""

    __tablename__ = "kb_versions"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, default=0)
