"""The retrieval step's pure parts: what a request's `knowledge_base` asks, that an answer carries
`citations` only when it was asked, that a grounded answer has its own cache entry, and how the API fits
passages for a model on an upstream server (no tokenizer: an upper bound of the tokens)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from llm_platform.cache.response_cache import cache_key
from llm_platform.chat.generation import Generation
from llm_platform.chat.grounding import (
    Citation,
    KnowledgeAsk,
    KnowledgeBaseOption,
    citations,
    ground,
    knowledge_ask,
    query_of,
)
from llm_platform.chat.openai_protocol import Usage
from llm_platform.chat.sampling import ResolvedMaxTokens
from llm_platform.chat.schemas import ChatDone
from llm_platform.knowledge.schemas import Passage
from models_registry.upstream import Upstream
from models_registry.worker.protocol import ChatMessage, GenerateParams, GenerateRequest, Reference

TENANT = uuid.uuid4()


PASSAGES = [
    Passage(
        document_id=uuid.uuid4(),
        title=f"Doc {n}",
        collection="default",
        chunk_index=n,
        text="word " * 100,
        score=1.0 / (n + 1),
    )
    for n in range(4)
]


def request(**changes) -> GenerateRequest:  # type: ignore[no-untyped-def]
    base = {
        "request_id": "r",
        "tenant": "alpha",
        "model": "m",
        "messages": [ChatMessage(role="user", content="What is Zorbium?")],
        "params": GenerateParams(max_tokens=16, temperature=0),
    }
    return GenerateRequest(**(base | changes))


def test_what_knowledge_base_asks_for():
    assert knowledge_ask(None) is None and knowledge_ask(False) is None
    assert knowledge_ask(True) == KnowledgeAsk(top_k=4, collections=None)
    assert knowledge_ask(KnowledgeBaseOption(top_k=2, collections=["hr"])) == KnowledgeAsk(2, ["hr"])
    for bad in ({"top_k": 0}, {"top_k": 21}, {"collections": [""]}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            KnowledgeBaseOption.model_validate(bad)


def test_the_query_is_the_last_user_message():
    said = [ChatMessage(role="user", content="first"), ChatMessage(role="assistant", content="a")]
    assert query_of([*said, ChatMessage(role="user", content="second")]) == "second"


def test_an_answer_names_citations_only_when_the_knowledge_base_was_asked():
    usage = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
    plain = ChatDone(message_id="m", finish_reason="stop", usage=usage, model="x")
    assert "citations" not in plain.model_dump() and "citations" not in plain.model_dump_json()
    cited = ChatDone(
        message_id="m", finish_reason="stop", usage=usage, model="x", citations=citations(PASSAGES, 2)
    )
    assert [c["title"] for c in cited.model_dump()["citations"]] == ["Doc 0", "Doc 1"]
    assert (
        ChatDone(message_id="m", finish_reason="stop", usage=usage, model="x", citations=[]).model_dump()[
            "citations"
        ]
        == []
    )  # asked, but nothing fitted or was found: an empty list, not a missing field


def test_citations_are_the_passages_the_prompt_held_best_first():
    assert citations(PASSAGES, 3) == [
        Citation(document_id=str(p.document_id), title=p.title, chunk_index=p.chunk_index, score=p.score)
        for p in PASSAGES[:3]
    ]
    assert citations(PASSAGES, 0) == []


def test_a_grounded_answer_has_its_own_cache_entry():
    plain = request()
    grounded = request(references=[Reference(title="Doc", text="Zorbium boils at 12 degrees")])
    other = request(references=[Reference(title="Doc", text="Zorbium boils at 13 degrees")])
    keys = {cache_key(TENANT, r) for r in (plain, grounded, other)}
    assert len(keys) == 3
    assert cache_key(TENANT, request()) == cache_key(TENANT, plain)  # no references: the key as before


def _generation(context_length: int, upstream: Upstream | None) -> Generation:
    return Generation(request(), context_length, ResolvedMaxTokens(16, False), upstream)


def test_a_worker_of_ours_is_sent_every_passage_to_fit_with_its_tokenizer():
    grounded = ground(_generation(512, None), PASSAGES)
    assert [r.title for r in grounded.request.references] == ["Doc 0", "Doc 1", "Doc 2", "Doc 3"]
    assert grounded.request.messages == request().messages and grounded.references_in_prompt is None


def test_for_an_upstream_model_the_api_puts_in_what_fits_by_an_upper_bound_of_the_tokens():
    upstream = Upstream(base_url="http://vllm:8000/v1", model="big")
    # Each passage is ~500 bytes; 1,400 tokens of room after the 16 of the answer holds two of them.
    grounded = ground(_generation(1400, upstream), PASSAGES)
    assert grounded.request.references == []
    assert grounded.references_in_prompt == 2
    material = grounded.request.messages[0].content
    assert "[1] Doc 0" in material and "[2] Doc 1" in material and "Doc 2" not in material
    assert grounded.request.messages[-1].content == "What is Zorbium?"
