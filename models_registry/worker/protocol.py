"""The internal API between the API layer and model workers (JSON in, NDJSON events out)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

GENERATE_PATH = "/internal/generate"
EMBED_PATH = "/internal/embed"
HEALTH_PATH = "/internal/health"
METRICS_PATH = "/internal/metrics"
REGISTER_PATH = "/internal/workers"


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class GenerateParams(BaseModel):
    max_tokens: int | None = None  # None: as many as fit, up to the worker's default
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    ignore_eos: bool = False


class GenerateRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=128)
    tenant: str = Field(min_length=1, max_length=63)
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    params: GenerateParams = GenerateParams()


class WorkerEvent(BaseModel):
    """One line of the stream: new text, and on the last line the finish reason and exact usage."""

    text: str = ""
    finished: bool = False
    finish_reason: Literal["stop", "length", "cancelled", "error"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


class EmbedRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=128)
    tenant: str = Field(min_length=1, max_length=63)
    model: str
    inputs: list[str] = Field(min_length=1, max_length=2048)
    normalize: bool = True


class EmbedResponse(BaseModel):
    embeddings: list[list[float]]
    prompt_tokens: int
