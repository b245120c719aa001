"""A document as it arrives: an upload's type checked and its text extracted (in a thread; a PDF in a
child process stopped at a time limit: extraction_process.py), or text sent as JSON; then stored, queued
for ingestion."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.core.errors import PayloadTooLarge
from llm_platform.core.settings import Settings
from llm_platform.knowledge import extraction
from llm_platform.knowledge.extraction_process import extract_pdf
from llm_platform.knowledge.models import Document
from llm_platform.knowledge.schemas import DocumentCreate
from llm_platform.knowledge.service import add_document, content_hash


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None
    content_type: str | None
    title: str | None
    collection: str
    metadata: dict[str, object]


def check_upload_size(size: int, settings: Settings) -> None:
    if size > settings.knowledge_max_upload_bytes:
        raise PayloadTooLarge(
            f"The file is over the upload limit of {settings.knowledge_max_upload_bytes} bytes",
            code="file_too_large",
            param="file",
        )


async def add_upload(
    session: AsyncSession, tenant_id: uuid.UUID, upload: Upload, settings: Settings
) -> Document:
    kind = extraction.source_type(upload.filename, upload.content_type)  # 415 before any parsing
    check_upload_size(len(upload.data), settings)
    title = upload.title or extraction.title_from(upload.filename) or "Untitled"
    text, failure = None, None
    limits = {"max_pages": settings.knowledge_max_pdf_pages, "max_chars": settings.knowledge_max_text_chars}
    try:
        if kind == "pdf":  # in a child process, stopped at the time and memory limits
            text = await asyncio.to_thread(
                extract_pdf,
                upload.data,
                timeout_s=settings.knowledge_extract_timeout_s,
                memory_mb=settings.knowledge_extract_memory_mb,
                **limits,
            )
        else:
            text = await asyncio.to_thread(extraction.extract, upload.data, kind, **limits)
    except extraction.ExtractionFailed as exc:  # recorded as a failed document, with the reason
        failure = str(exc)
    return await add_document(
        session,
        tenant_id,
        collection=upload.collection,
        title=title,
        text=text,
        source_type=kind,
        size_bytes=len(upload.data),
        metadata=upload.metadata,
        failure=failure,
        raw_hash=content_hash(upload.data) if failure else None,
    )


async def add_text(session: AsyncSession, tenant_id: uuid.UUID, body: DocumentCreate) -> Document:
    text = extraction.tidy(body.text)
    return await add_document(
        session,
        tenant_id,
        collection=body.collection,
        title=body.title or text[:80].split("\n")[0] or "Untitled",
        text=text,
        source_type="json",
        size_bytes=len(body.text.encode()),
        metadata=body.metadata,
    )
