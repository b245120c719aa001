"""Wire shapes of the tenant's simple chat API (`POST /{tenant}/chat`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from llm_platform.chat.openai_protocol import Usage


class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class ChatIn(BaseModel):
    prompt: Annotated[str, Field(min_length=1)]
    history: list[HistoryMessage] = Field(default_factory=list)
    system: str | None = None
    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    stream: bool = False


class ChatOut(BaseModel):
    response: str
    history: list[HistoryMessage]
    usage: Usage
    model: str
    message_id: str
    latency_ms: int
    finish_reason: str


class ChatChunk(BaseModel):
    text: str
    message_id: str


class ChatDone(BaseModel):
    done: Literal[True] = True
    message_id: str
    finish_reason: str
    usage: Usage
    model: str
