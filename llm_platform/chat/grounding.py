"""Grounded answers: the retrieval step of a chat turn. Passages a knowledge base finds for the last user
message go into the prompt as reference material (never over the model's context: as many of the best
as fit), and the answer cites those the model was given.

The knowledge base is a floor below chat (llm_platform/knowledge): the turn calls its `retrieve`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from llm_platform.chat.generation import Generation, prompt_tokens_at_most
from llm_platform.core.unicode_text import Text
from llm_platform.knowledge.schemas import Passage
from models_registry.worker.protocol import ChatMessage, Reference
from models_registry.worker.references import fit_references, with_references

DEFAULT_TOP_K = 4
MAX_TOP_K = 20
# An upstream server applies its own default when max_tokens is not set: room kept for the answer then.
UPSTREAM_ANSWER_ROOM = 512


@dataclass(frozen=True)
class KnowledgeAsk:
    """What a turn asks of the tenant's knowledge base: how many passages, from which collections (None:
    all of them)."""

    top_k: int = DEFAULT_TOP_K
    collections: list[str] | None = None


class KnowledgeBaseOption(BaseModel):
    """`knowledge_base` in a chat request: `true` for the defaults, or which passages to draw on."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(default=DEFAULT_TOP_K, ge=1, le=MAX_TOP_K, description="Passages to retrieve")
    collections: list[Annotated[Text, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=50, description="Collections to search (default: all of the tenant's)"
    )


def knowledge_ask(option: bool | KnowledgeBaseOption | None) -> KnowledgeAsk | None:
    """What a request's `knowledge_base` field asks of the turn (false or absent: nothing)."""
    if option is None or option is False:
        return None
    if option is True:
        return KnowledgeAsk()
    return KnowledgeAsk(option.top_k, option.collections)


class Citation(BaseModel):
    """A passage the answer was given, as the response names it."""

    document_id: str
    title: str
    chunk_index: int
    score: float


class CitedAnswer(BaseModel):
    """An answer that names the passages it was given: `citations` appears only when the request asked
    for the knowledge base, and `knowledge_base_degraded` only when its search fell back to words alone,
    so an answer without them is exactly what it was before."""

    citations: list[Citation] | None = Field(
        default=None, description="The knowledge-base passages the answer was given (knowledge_base asked)"
    )
    knowledge_base_degraded: Literal["lexical_only"] | None = Field(
        default=None,
        description="`lexical_only`: the passages were found by full-text search alone, the embedding "
        "model being unavailable (as a knowledge-base search says in its `degraded`); absent otherwise",
    )

    @model_serializer(mode="wrap")
    def _grounding_only_when_asked(self, serialize):  # type: ignore[no-untyped-def]
        data = serialize(self)
        for name in ("citations", "knowledge_base_degraded"):
            if getattr(self, name) is None:
                data.pop(name, None)
        return data


def query_of(messages: Sequence[ChatMessage]) -> str:
    """What to search for: the last user message."""
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def ground(generation: Generation, passages: Sequence[Passage]) -> Generation:
    """The generation with the passages as references. A worker of ours fits them with the model's
    tokenizer; for an upstream server the API fits them here, with an upper bound of the tokens (the
    bytes, as the reservation counts), and puts them into the messages itself."""
    references = [Reference(title=p.title, text=p.text) for p in passages]
    request = generation.request
    if generation.upstream is None:
        return dataclasses.replace(generation, request=request.model_copy(update={"references": references}))
    room = generation.context_length - (generation.max_tokens.value or UPSTREAM_ANSWER_ROOM)
    used = fit_references(request.messages, references, prompt_tokens_at_most, room)
    messages = with_references(request.messages, references[:used])
    return dataclasses.replace(
        generation, request=request.model_copy(update={"messages": messages}), references_in_prompt=used
    )


def citations(passages: Sequence[Passage], used: int) -> list[Citation]:
    """The passages the prompt held (the best `used` of them), as citations."""
    return [
        Citation(document_id=str(p.document_id), title=p.title, chunk_index=p.chunk_index, score=p.score)
        for p in passages[:used]
    ]
