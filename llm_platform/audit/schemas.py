"""The audit log's API shapes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AuditRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int
    at: datetime
    tenant_id: uuid.UUID | None
    actor_kind: str | None
    actor_id: uuid.UUID | None
    key_prefix: str | None
    action: str
    resource: str
    status: int
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int
    cache_hit: bool | None
    client_address: str | None
    user_agent: str | None
    request_id: str | None
    request_sha256: str | None
    response_sha256: str | None
    request_text: str | None
    response_text: str | None
    row_hash: str


class AuditPage(BaseModel):
    data: list[AuditRecordOut]
    next_cursor: str | None


class VerificationOut(BaseModel):
    ok: bool
    rows: int
    first_bad_seq: int | None = None
    first_bad_id: int | None = None
    reason: str | None = None
