"""Wire shapes of the tenant's simple chat API (`POST /{tenant}/chat`; the WebSocket's chat frames too),
the turn a `ChatIn` asks for, and the shapes of stored conversations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm_platform.chat.grounding import CitedAnswer, KnowledgeBaseOption, knowledge_ask
from llm_platform.chat.openai_protocol import Usage
from llm_platform.chat.sampling import AskedSampling
from llm_platform.chat.turn import TurnRequest
from llm_platform.core.request_body import RequestBody
from llm_platform.core.unicode_text import Text
from models_registry.worker.protocol import ChatMessage, MaxTokens, Temperature, TopP


class HistoryMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: Text


class ChatIn(BaseModel):
    prompt: Annotated[Text, Field(min_length=1)]
    history: list[HistoryMessage] = Field(default_factory=list)
    system: Text | None = None
    model: Text | None = None
    max_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stream: bool = False
    ignore_eos: bool = False
    conversation_id: Text | None = Field(
        default=None, description="Keep the history server-side: its stored messages replace `history`"
    )
    knowledge_base: bool | KnowledgeBaseOption | None = Field(
        default=None, description="Ground the answer in the tenant's knowledge base; the answer cites it"
    )


def turn_request(body: ChatIn) -> TurnRequest:
    """The simple form as a turn: the prompt is this turn's message; `system` goes first and is never
    remembered; a stored conversation's history replaces the body's."""
    return TurnRequest(
        model=body.model or None,  # none (or empty): the platform's default chat model
        new_messages=[ChatMessage(role="user", content=body.prompt)],
        sampling=AskedSampling(
            max_tokens=body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            ignore_eos=body.ignore_eos,
        ),
        system=[ChatMessage(role="system", content=body.system)] if body.system else [],
        history=[ChatMessage(role=m.role, content=m.content) for m in body.history],
        conversation_id=body.conversation_id,
        knowledge=knowledge_ask(body.knowledge_base),
    )


class ChatOut(CitedAnswer):
    response: str
    history: list[HistoryMessage]
    usage: Usage
    model: str
    message_id: str
    latency_ms: int
    finish_reason: str
    conversation_id: str | None = None


class ChatChunk(BaseModel):
    text: str
    message_id: str


class ChatDone(CitedAnswer):
    done: Literal[True] = True
    message_id: str
    finish_reason: str
    usage: Usage
    model: str


class ConversationCreate(RequestBody):
    title: Annotated[Text, Field(min_length=1, max_length=200)] | None = None


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    created_at: datetime
    updated_at: datetime


class ConversationPage(BaseModel):
    data: list[ConversationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class StoredMessage(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    role: str
    content: str
    model: str | None
    created_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[StoredMessage]
