"""A turn's stream: what the model sends is what the client reads, the cache keeps and the conversation
stores, even text no database column can hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import anyio

from llm_platform.cache.response_cache import CachedAnswer
from llm_platform.chat.stream import stream_answer
from models_registry.worker.protocol import WorkerEvent


class _ScriptedModel:
    """Stands in for the dispatcher (our own class): a model whose answer holds a NUL."""

    async def generate(self, request, upstream=None) -> AsyncIterator[WorkerEvent]:  # type: ignore[no-untyped-def]
        yield WorkerEvent(text="a\x00", completion_tokens=1, prompt_tokens=3)
        yield WorkerEvent(text="b", completion_tokens=2, prompt_tokens=3)
        yield WorkerEvent(finished=True, finish_reason="stop", completion_tokens=2, prompt_tokens=3)


class _Settlement:
    def __init__(self) -> None:
        self.call = SimpleNamespace(first_token=lambda: None)
        self.answers: list[CachedAnswer] = []

    async def answered(self, answer: CachedAnswer) -> None:
        self.answers.append(answer)

    async def interrupted(self, prompt_tokens: int, completion_tokens: int) -> None:
        raise AssertionError("a whole answer is not interrupted")


def test_a_nul_from_the_model_reads_the_same_to_the_client_and_in_what_is_kept():
    settlement = _Settlement()
    generation = SimpleNamespace(request=None, upstream=None, references_in_prompt=None)

    async def run() -> list[WorkerEvent]:
        return [event async for event in stream_answer(_ScriptedModel(), generation, settlement)]  # type: ignore[arg-type]

    events = anyio.run(run)
    streamed = "".join(event.text for event in events)
    assert streamed == "a\ufffdb"
    assert [("".join(a.pieces), a.completion_tokens) for a in settlement.answers] == [(streamed, 2)]
    assert events[-1].finished and events[-1].finish_reason == "stop"
