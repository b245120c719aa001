"""Wire shapes of the knowledge base's API (`/{tenant}/kb/...`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llm_platform.knowledge.models import DEFAULT_COLLECTION, DocumentStatus

CollectionName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
# Metadata stays small and flat: values a filter can compare for equality.
MetadataValue = str | int | float | bool | None
Metadata = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64)], MetadataValue], Field(max_length=32)
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: CollectionName


class CollectionOut(BaseModel):
    name: str
    documents: int
    created_at: datetime


class DocumentCreate(BaseModel):
    """A document sent as JSON; a file is sent as multipart instead (`file`, `title`, `collection`,
    `metadata` as a JSON object)."""

    model_config = ConfigDict(extra="forbid")
    title: Title | None = None
    text: Annotated[str, Field(max_length=20 * 1024 * 1024, description="The document's text (not empty)")]
    collection: CollectionName = DEFAULT_COLLECTION
    metadata: Metadata = {}


class DocumentAccepted(BaseModel):
    id: uuid.UUID
    status: DocumentStatus


class DocumentOut(BaseModel):
    id: uuid.UUID
    title: str
    collection: str
    status: DocumentStatus
    chunks: int
    bytes: int
    created_at: datetime
    error: str | None
    metadata: dict[str, MetadataValue]


class DocumentPage(BaseModel):
    data: list[DocumentOut]
    next_cursor: str | None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    top_k: Annotated[int, Field(ge=1, le=100)] = 4
    collections: Annotated[list[CollectionName], Field(max_length=64)] | None = None
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    filter: Annotated[Metadata, Field(description="Metadata that must equal these values")] = {}


class Passage(BaseModel):
    document_id: uuid.UUID
    title: str
    collection: str
    chunk_index: int
    text: str
    score: float


LEXICAL_ONLY = "lexical_only"


class SearchResults(BaseModel):
    data: list[Passage]
    degraded: Literal["lexical_only"] | None = Field(
        default=None,
        description="`lexical_only`: a hybrid search answered by full-text search alone, the embedding "
        "model being unavailable (a dense search answers 503 then); null when the search ran as asked",
    )
