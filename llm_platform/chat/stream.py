"""A turn's answer as events: streamed from a worker (or upstream) or replayed from the cache, settled
on every path; and the helpers the front doors read it with (the whole answer at once, or resumed after
its first event)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

import anyio

from llm_platform.cache.response_cache import CachedAnswer
from llm_platform.chat.generation import Generation
from llm_platform.chat.settle import Settlement, model_failed
from llm_platform.core.errors import PlatformError, ServiceUnavailable
from llm_platform.core.unicode_text import storable
from models_registry.dispatch import Dispatcher, WorkerFailed
from models_registry.worker.protocol import WorkerEvent


async def stream_answer(
    dispatcher: Dispatcher, generation: Generation, settlement: Settlement
) -> AsyncIterator[WorkerEvent]:
    """Text events, then the final event (a failure mid-stream becomes a final `error` event).

    Settled on every path: a complete answer before its final event goes out; a failed, cancelled or
    abandoned one for the tokens it produced. A refusal before the first event (no worker) bills
    nothing, and releases the lease all the same.
    """
    prompt_tokens = completion_tokens = 0
    parts: list[str] = []
    settled = False

    def used(final: WorkerEvent) -> int:
        """How many knowledge-base passages the prompt held (the worker counted them, or the API did)."""
        in_prompt = generation.references_in_prompt
        return final.references_used if in_prompt is None else in_prompt

    try:
        async with aclosing(dispatcher.generate(generation.request, generation.upstream)) as events:
            try:
                async for event in events:
                    prompt_tokens = max(prompt_tokens, event.prompt_tokens)
                    completion_tokens = max(completion_tokens, event.completion_tokens)
                    if event.text:
                        if not parts:
                            settlement.call.first_token()
                        # A model may emit NUL, which the stored conversation cannot hold: the client,
                        # the cache and the conversation all get the same text.
                        text = storable(event.text)
                        parts.append(text)
                        yield WorkerEvent(text=text)
                    if event.finished:
                        if event.finish_reason == "error":
                            settlement.failed()
                        else:
                            settled = True  # even if settling fails: never bill one answer twice
                            await settlement.answered(
                                CachedAnswer(
                                    tuple(parts),
                                    event.finish_reason or "stop",
                                    prompt_tokens,
                                    completion_tokens,
                                    used(event),
                                )
                            )
                        # Its text went out just above.
                        yield event.model_copy(update={"text": "", "references_used": used(event)})
                        return
            except WorkerFailed:
                settlement.failed()
                yield WorkerEvent(
                    finished=True, finish_reason="error", error="The model failed while generating"
                )
    except PlatformError as error:  # refused before its first event: no worker, a prompt too long
        settlement.call.failed(error)
        raise
    finally:
        if not settled:
            # Also when the client went away: the server is cancelling this task, and billing must finish.
            with anyio.CancelScope(shield=True):
                await settlement.interrupted(prompt_tokens, completion_tokens)


async def replay(hit: CachedAnswer, settlement: Settlement) -> AsyncIterator[WorkerEvent]:
    """A cached answer, as the same events the model sent the first time."""
    await settlement.served_from_cache(hit)
    for piece in hit.pieces:
        yield WorkerEvent(text=piece)
    yield WorkerEvent(
        finished=True,
        finish_reason=hit.finish_reason,  # type: ignore[arg-type]
        prompt_tokens=hit.prompt_tokens,
        completion_tokens=hit.completion_tokens,
        references_used=hit.references_used,
    )


async def resume(first: WorkerEvent, events: AsyncIterator[WorkerEvent]) -> AsyncIterator[WorkerEvent]:
    """`first` (already taken, so errors before it got a proper status code), then the rest. Closing
    `events` stays the caller's job."""
    yield first
    if not first.finished:
        async for event in events:
            yield event


@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    references_used: int = 0


async def complete(events: AsyncIterator[WorkerEvent]) -> Completion:
    """The whole answer at once, from a turn's events."""
    started = time.perf_counter()
    parts: list[str] = []
    async with aclosing(events):  # type: ignore[type-var]
        async for event in events:
            parts.append(event.text)
            if event.finished:
                if event.finish_reason == "error":
                    raise model_failed()
                return Completion(
                    text="".join(parts),
                    finish_reason=event.finish_reason or "stop",
                    prompt_tokens=event.prompt_tokens,
                    completion_tokens=event.completion_tokens,
                    latency_ms=round((time.perf_counter() - started) * 1000),
                    references_used=event.references_used,
                )
    raise ServiceUnavailable("The model ended the answer early; please retry", code="model_error")
