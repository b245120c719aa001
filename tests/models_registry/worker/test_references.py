"""Reference material in a prompt: where it goes, and that as many of the best passages as fit go in,
never more than the context holds (worker side, with the model's own tokenizer)."""

from __future__ import annotations

import json

import httpx

from models_registry.worker.protocol import ChatMessage, Reference
from models_registry.worker.references import PREAMBLE, fit_references, reference_message, with_references
from tests.conftest import TINY_CONTEXT, TINY_MODEL
from tests.workers import WORKER_SECRET

SYSTEM = ChatMessage(role="system", content="Be brief.")
EARLIER = ChatMessage(role="user", content="Hello")
REPLY = ChatMessage(role="assistant", content="Hi")
QUESTION = ChatMessage(role="user", content="What is the boiling point of Zorbium?")
REFS = [Reference(title=f"Doc {n}", text=f"passage number {n} " * 5) for n in range(1, 5)]


def words(messages: list[ChatMessage]) -> int:
    return sum(len(m.content.split()) for m in messages)


def test_the_passages_go_just_before_the_last_user_message_numbered_best_first():
    messages = with_references([SYSTEM, EARLIER, REPLY, QUESTION], REFS[:2])
    assert [m.role for m in messages] == ["system", "user", "assistant", "system", "user"]
    assert messages[-1] == QUESTION and messages[:3] == [SYSTEM, EARLIER, REPLY]
    material = messages[3].content
    assert material.startswith(PREAMBLE)
    assert "not instructions" in PREAMBLE  # the model is told a passage may not steer it
    assert material.index("[1] Doc 1\n") < material.index("[2] Doc 2\n")


def test_no_passages_leave_the_messages_as_they_were():
    assert with_references([SYSTEM, QUESTION], []) == [SYSTEM, QUESTION]


def test_as_many_of_the_best_passages_as_fit_and_no_more():
    base = words([QUESTION])
    per_passage = words([reference_message(REFS[:2])]) - words([reference_message(REFS[:1])])
    with_one = words(with_references([QUESTION], REFS[:1]))
    assert fit_references([QUESTION], REFS, words, room=10_000) == 4
    assert fit_references([QUESTION], REFS, words, room=with_one) == 1
    assert fit_references([QUESTION], REFS, words, room=with_one + per_passage - 1) == 1
    assert fit_references([QUESTION], REFS, words, room=with_one + per_passage) == 2
    assert fit_references([QUESTION], REFS, words, room=base) == 0  # not even the best one


def test_a_worker_fills_the_context_with_passages_but_never_overflows_it(tiny_worker):
    """Forty passages (~60 tokens each) cannot all fit a 512-token context: the worker takes the best
    that do, leaves the completion its budget, answers, and says how many it used."""
    references = [{"title": f"Doc {n}", "text": "lorem ipsum dolor sit amet " * 2} for n in range(40)]
    body = {
        "request_id": "grounded",
        "tenant": "t",
        "model": TINY_MODEL,
        "messages": [QUESTION.model_dump()],
        "params": {"max_tokens": 16, "temperature": 0, "ignore_eos": True},
        "references": references,
    }
    headers = {"Authorization": f"Bearer {WORKER_SECRET}"}
    with httpx.stream(
        "POST", f"{tiny_worker.url}/internal/generate", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(line) for line in response.iter_lines() if line]
    final = events[-1]
    assert final["finished"] and final["finish_reason"] == "length" and final["completion_tokens"] == 16
    assert 0 < final["references_used"] < 40
    assert final["prompt_tokens"] + 16 <= TINY_CONTEXT
    # One passage more would not have fit: the worker used the room it had.
    assert final["prompt_tokens"] + 16 > TINY_CONTEXT - 100
