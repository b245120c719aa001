"""The OpenAI wire protocol we speak: request and response shapes of /v1/chat/completions and /v1/models.

Kept apart from the code that serves it, so compatibility can be read and tested in one place. Fields
the official client sends that we cannot honour are refused with a 400 naming them, never ignored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm_platform.chat.grounding import CitedAnswer, KnowledgeBaseOption
from llm_platform.core.unicode_text import NO_LONE_SURROGATES, JsonValue, Text
from models_registry.worker.protocol import (
    SAMPLING_DEFAULTS,
    FrequencyPenalty,
    MaxTokens,
    PresencePenalty,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
)

Role = Literal["system", "developer", "user", "assistant"]


class TextPart(BaseModel):
    type: Literal["text"]
    text: str  # checked with the message's content (see NO_LONE_SURROGATES)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. `name`, which changes nothing for our models

    role: Role
    content: Annotated[str | list[TextPart], NO_LONE_SURROGATES]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown fields are checked in `unsupported_fields`
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)  # e.g. `metadata`: ignored, but checked

    model: Annotated[Text, Field(min_length=1, max_length=200)]
    messages: Annotated[list[Message], Field(min_length=1)]
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Annotated[str | list[str] | None, NO_LONE_SURROGATES] = None
    seed: int | None = None
    presence_penalty: PresencePenalty = SAMPLING_DEFAULTS.presence_penalty
    frequency_penalty: FrequencyPenalty = SAMPLING_DEFAULTS.frequency_penalty
    user: Text | None = None
    conversation_id: Text | None = None
    # Extensions beyond OpenAI's set (vLLM accepts the same names).
    top_k: TopK | None = None
    repetition_penalty: RepetitionPenalty | None = None
    ignore_eos: bool = False
    # Ours: a grounded answer from the tenant's knowledge base (the response then carries `citations`).
    knowledge_base: bool | KnowledgeBaseOption | None = None
    # Accepted when they ask for nothing we would have to ignore.
    logprobs: bool | None = None
    tools: list[JsonValue] | None = None
    tool_choice: JsonValue = None
    response_format: Annotated[dict[str, Any] | None, NO_LONE_SURROGATES] = None
    logit_bias: Annotated[dict[str, float] | None, NO_LONE_SURROGATES] = None

    @field_validator("n")
    @classmethod
    def _only_one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported")
        return n

    def unsupported_fields(self) -> list[str]:
        """Fields set to something the engine cannot honour."""
        refused = []
        if self.logprobs:
            refused.append("logprobs")
        if self.tools:
            refused.append("tools")
        if self.tool_choice not in (None, "none", "auto"):
            refused.append("tool_choice")
        if self.response_format and self.response_format.get("type") not in (None, "text"):
            refused.append("response_format")
        if self.logit_bias:
            refused.append("logit_bias")
        refused += sorted(key for key in (self.model_extra or {}) if key not in _HARMLESS_EXTRAS)
        return refused

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


# Sent by clients and SDKs without changing the output.
_HARMLESS_EXTRAS = {"metadata", "store", "parallel_tool_calls", "service_tier", "top_logprobs", "modalities"}


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(CitedAnswer):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(CitedAnswer):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llm-platform"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def usage_of(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
