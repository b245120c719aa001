"""Wire shapes of the model catalogue's admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from models_registry.models import ModelBackend, ModelKind

ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")]


class DefaultParams(BaseModel):
    """Sampling defaults applied when a request leaves a parameter out."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0, le=10)] | None = None


class ModelCreate(BaseModel):
    name: ModelName
    kind: ModelKind = ModelKind.chat
    backend: ModelBackend = ModelBackend.hf
    source: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=1000)] | None = None
    context_length: Annotated[int, Field(ge=16, le=1_048_576)] = 4096
    default_params: DefaultParams = DefaultParams()
    enabled: bool = True

    @model_validator(mode="after")
    def _base_url_iff_openai(self) -> Self:
        if (self.backend is ModelBackend.openai) != (self.base_url is not None):
            raise ValueError("base_url is required for backend 'openai' and only for it")
        return self


class ModelUpdate(BaseModel):
    source: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=1000)] | None = None
    context_length: Annotated[int, Field(ge=16, le=1_048_576)] | None = None
    default_params: DefaultParams | None = None
    enabled: bool | None = None


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


class TenantModelOut(BaseModel):
    """What a tenant's members see of a model: no sources, paths or internal URLs."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    kind: ModelKind
    context_length: int
