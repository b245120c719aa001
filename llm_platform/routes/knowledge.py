"""`/{tenant}/kb/...`: a tenant's knowledge base. Collections, documents (202: ingested in the
background) and search. Writes need a tenant admin or an API key with `kb:write`; reads and search a
member or an API key with `inference`. Another tenant's documents answer 404, as missing ones do."""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from llm_platform.auth.dependencies import TenantDep
from llm_platform.core.db import SessionDep
from llm_platform.core.errors import BadRequest, Unprocessable, UnsupportedMediaType
from llm_platform.core.openapi_errors import errors
from llm_platform.core.settings import SettingsDep
from llm_platform.knowledge import intake, service
from llm_platform.knowledge.dependencies import (
    IngesterDep,
    KnowledgeBaseDep,
    KnowledgeReaderDep,
    KnowledgeWriterDep,
    SearchingTenantDep,
)
from llm_platform.knowledge.models import DEFAULT_COLLECTION, DocumentStatus
from llm_platform.knowledge.schemas import (
    CollectionCreate,
    CollectionOut,
    DocumentAccepted,
    DocumentCreate,
    DocumentOut,
    DocumentPage,
    Metadata,
    SearchRequest,
    SearchResults,
)
from llm_platform.metrics.api import ApiMetricsDep

router = APIRouter(prefix="/{tenant}/kb", tags=["knowledge base"])
UPLOAD_PATH = r"/[^/]+/kb/documents"  # for the body-size limit: uploads may be larger than other bodies
_METADATA = TypeAdapter(Metadata)
_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": ".txt, .md, .html or .pdf"},
        "title": {"type": "string", "maxLength": 300},
        "collection": {"type": "string", "maxLength": 64, "default": DEFAULT_COLLECTION},
        "metadata": {"type": "string", "description": "A JSON object of flat values"},
    },
}


@router.get("/collections")
async def list_collections(
    tenant: TenantDep, _: KnowledgeReaderDep, session: SessionDep
) -> list[CollectionOut]:
    return [
        CollectionOut(name=collection.name, documents=count, created_at=collection.created_at)
        for collection, count in await service.list_collections(session, tenant.id)
    ]


@router.post("/collections", status_code=status.HTTP_201_CREATED, responses=errors(409))
async def create_collection(
    body: CollectionCreate, tenant: TenantDep, _: KnowledgeWriterDep, session: SessionDep
) -> CollectionOut:
    collection = await service.create_collection(session, tenant.id, body.name)
    return CollectionOut(name=collection.name, documents=0, created_at=collection.created_at)


@router.delete("/collections/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_collection(
    name: str, tenant: TenantDep, _: KnowledgeWriterDep, session: SessionDep
) -> Response:
    """Removes the collection, its documents and their vectors. `default` always exists: deleting it
    removes its documents and their vectors and keeps it, empty."""
    await service.delete_collection(session, tenant.id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/documents",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(400, 404, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": DocumentCreate.model_json_schema()},
                "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
            },
        }
    },
)
async def add_document(
    request: Request,
    tenant: TenantDep,
    _: KnowledgeWriterDep,
    session: SessionDep,
    settings: SettingsDep,
    ingester: IngesterDep,
) -> DocumentAccepted:
    """A file (multipart: `file`, and optionally `title`, `collection`, `metadata` as JSON) or JSON
    `{"title", "text", "collection", "metadata"}`. Answers at once with the document's id and status;
    identical content already in the collection answers with that document."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        document = await intake.add_upload(session, tenant.id, await _read_upload(request), settings)
    elif content_type == "application/json":
        document = await intake.add_text(session, tenant.id, await _read_json(request))
    else:
        raise UnsupportedMediaType("Send the document as multipart/form-data or application/json")
    if document.status is DocumentStatus.queued:
        ingester.kick()
    return DocumentAccepted(id=document.id, status=document.status)


@router.get("/documents", responses=errors(400))  # 400: a bad cursor
async def list_documents(
    tenant: TenantDep,
    _: KnowledgeReaderDep,
    session: SessionDep,
    collection: Annotated[str | None, Query(max_length=64)] = None,
    status: DocumentStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 50,
) -> DocumentPage:
    documents, next_cursor = await service.list_documents(
        session, tenant.id, collection=collection, status=status, cursor=cursor, limit=limit
    )
    return DocumentPage(data=documents, next_cursor=next_cursor)


@router.get("/documents/{document_id}")
async def get_document(
    document_id: uuid.UUID, tenant: TenantDep, _: KnowledgeReaderDep, session: SessionDep
) -> DocumentOut:
    return await service.get_document(session, tenant.id, document_id)


@router.delete("/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(
    document_id: uuid.UUID, tenant: TenantDep, _: KnowledgeWriterDep, session: SessionDep
) -> Response:
    """Removes the document, its chunks and their vectors (from every replica's next search on)."""
    await service.delete_document(session, tenant.id, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/search", responses=errors(503))
async def search(
    body: SearchRequest,
    tenant: SearchingTenantDep,
    knowledge: KnowledgeBaseDep,
    metrics: ApiMetricsDep,
) -> SearchResults:
    """The passages that best match `query`: `hybrid` (dense and lexical fused by reciprocal rank
    fusion; score: the fused score), `dense` (score: cosine similarity) or `lexical` (full-text rank).
    While the embedding model is unavailable, `hybrid` answers from full-text search alone with
    `"degraded": "lexical_only"`, and `dense` answers 503."""
    started = time.perf_counter()
    found = await knowledge.search(
        tenant.id,
        body.query,
        top_k=body.top_k,
        collections=body.collections,
        mode=body.mode,
        metadata=body.filter,
    )
    metrics.knowledge_searched("api", time.perf_counter() - started)
    return found


async def _read_json(request: Request) -> DocumentCreate:
    try:
        return DocumentCreate.model_validate_json(await request.body())
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise BadRequest("The body is not valid JSON", code="invalid_json") from exc
        raise RequestValidationError(exc.errors(include_url=False)) from exc


async def _read_upload(request: Request) -> intake.Upload:
    async with request.form(max_files=1, max_fields=3, max_part_size=64 * 1024) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise BadRequest("Send the document as the `file` field", code="missing_file", param="file")
        fields = {name: form.get(name) for name in ("title", "collection", "metadata")}
        if any(value is not None and not isinstance(value, str) for value in fields.values()):
            raise BadRequest("Only `file` may be a file", code="invalid_field")
        data = await file.read()
        return intake.Upload(
            data=data,
            filename=file.filename,
            content_type=file.content_type,
            title=_form_text(fields["title"], "title", 300),
            collection=_collection(fields["collection"]),
            metadata=_metadata(fields["metadata"]),
        )


def _form_text(value: object, name: str, max_length: int) -> str | None:
    if value is None or not str(value).strip():
        return None
    if len(str(value)) > max_length:
        raise Unprocessable(f"`{name}` is longer than {max_length} characters", param=name)
    return str(value).strip()


def _collection(value: object) -> str:
    name = _form_text(value, "collection", 64) or DEFAULT_COLLECTION
    try:
        CollectionCreate(name=name)
    except ValidationError as exc:
        raise Unprocessable("`collection` is not a valid collection name", param="collection") from exc
    return name


def _metadata(value: object) -> dict[str, object]:
    if value is None or not str(value).strip():
        return {}
    try:
        return _METADATA.validate_python(json.loads(str(value)))
    except (ValueError, ValidationError) as exc:
        raise Unprocessable("`metadata` must be a JSON object of flat values", param="metadata") from exc
