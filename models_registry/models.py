"""The model catalogue: which models exist, how they are served, and their default sampling."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from llm_platform.core.db import Base, UUIDPrimaryKey, str_enum, utcnow


class ModelKind(StrEnum):
    chat = "chat"
    embedding = "embedding"


class ModelBackend(StrEnum):
    hf = "hf"  # a worker of ours running transformers
    openai = "openai"  # any OpenAI-compatible server (vLLM, TGI, Ollama), reached by base URL


class Model(UUIDPrimaryKey, Base):
    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(200), unique=True)  # the id clients send
    kind: Mapped[ModelKind] = mapped_column(str_enum(ModelKind))
    backend: Mapped[ModelBackend] = mapped_column(str_enum(ModelBackend))
    # A local directory, a Hugging Face id resolved from the local cache only, or `bundled:NAME`.
    source: Mapped[str] = mapped_column(String(1000))
    base_url: Mapped[str | None] = mapped_column(String(1000))  # backend=openai only
    context_length: Mapped[int]
    default_params: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
