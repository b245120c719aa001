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
    # Resolved by the API (llm_platform/chat/sampling.py), so it and the worker agree on the budget it
    # reserved tokens for. None: as many as fit (only from a caller other than the API).
    max_tokens: int | None = None
    # True: max_tokens is the platform's default, not asked for; the worker shortens it to the room the
    # prompt leaves (only the worker counts the prompt's tokens), where an asked one is refused if too long.
    max_tokens_is_default: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    ignore_eos: bool = False

    def asked_max_tokens(self) -> int | None:
        """max_tokens as the request (or the model's defaults) asked for it: None when the platform's
        default applies. What the response cache keys on, so a changed default keeps existing keys."""
        return None if self.max_tokens_is_default else self.max_tokens

    def max_tokens_within(self, room: int) -> int:
        """The completion's budget, once the worker knows the prompt leaves `room` tokens of context: an
        asked max_tokens as it is (the engine refuses one that does not fit), the default shortened to fit.
        At least 1, so a prompt that fills the context is refused by the engine, not sent back empty."""
        if self.max_tokens is None:
            return max(1, room)
        if self.max_tokens_is_default:
            return max(1, min(self.max_tokens, room))
        return self.max_tokens


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
