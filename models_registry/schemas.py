"""Wire shapes of the model catalogue's admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from llm_platform.core.request_body import RequestBody
from models_registry.models import ModelBackend, ModelKind
from models_registry.worker.protocol import MaxTokens, RepetitionPenalty, Temperature, TopK, TopP

ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")]


class DefaultParams(RequestBody):
    """Sampling defaults applied when a request leaves a parameter out (null: the engine's own)."""

    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: TopK | None = None
    repetition_penalty: RepetitionPenalty | None = None


ModelSource = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
BaseUrl = Annotated[str, StringConstraints(pattern=r"^https?://", max_length=1000)]
ContextLength = Annotated[int, Field(ge=16, le=1_048_576)]


class ModelCreate(RequestBody):
    """base_url is for backend `openai` only, and default_params.max_tokens at most context_length
    (checked by the service, which checks an update against the stored row the same way)."""

    name: ModelName
    kind: ModelKind = ModelKind.chat
    backend: ModelBackend = ModelBackend.hf
    source: ModelSource
    base_url: BaseUrl | None = None
    context_length: ContextLength = 4096
    default_params: DefaultParams = DefaultParams()
    enabled: bool = True


class ModelUpdate(RequestBody):
    """PATCH: a field left out stays as it is. Only base_url may be null (the backend decides whether it
    must be); default_params replaces the model's defaults as a whole (`{}`: none)."""

    source: ModelSource | MISSING = MISSING
    base_url: BaseUrl | MISSING | None = MISSING
    context_length: ContextLength | MISSING = MISSING
    default_params: DefaultParams | MISSING = MISSING
    enabled: bool | MISSING = MISSING


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: ModelKind
    backend: ModelBackend
    source: str
    base_url: str | None
    context_length: int
    default_params: dict[str, object]
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @field_validator("default_params", mode="before")
    @classmethod
    def _none_as_empty(cls, stored: object) -> object:
        # A null stored before updates refused it must not hide the model from the listing that repairs it.
        return {} if stored is None else stored


class TenantModelOut(BaseModel):
    """What a tenant's members see of a model: no sources, paths or internal URLs."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    kind: ModelKind
    context_length: int


class WorkerOut(BaseModel):
    """A live worker as platform admins see it (`GET /admin/workers`). Its URL is internal topology,
    which is why only platform admins see it; the worker secret is in no entry at all."""

    worker_id: str
    url: str
    models: list[str]
    state: Literal["starting", "ready"] = Field(
        description="starting: loading or warming up its model, sent no work yet; ready: serving"
    )
    capacity: int = Field(description="Sequences (or, for an embedding model, inputs) it runs at once")
    load: int = Field(description="Running and queued at its last heartbeat")
    queued: int | None = Field(description="Of `load`, those waiting for a slot (null: an older worker)")
    heartbeat_at: datetime
    heartbeat_age_s: float = Field(description="Seconds since that heartbeat, when the API answered")
