"""Embedding requests from several callers, embedded together: one padded forward per batch.

Callers queue their prepared inputs (token ids); one collector takes what is queued, in arrival order,
up to a number of inputs and a padded token budget (inputs x the longest of them: what the forward
really computes), runs one forward off the event loop, and hands each caller its vectors once all of its
inputs are done. Requests that arrive while a forward runs are gathered into the next, so a burst of
callers costs a few forwards rather than one each. A large request is spread over several forwards and
shares them with the requests queued behind it.

No torch here: the forward is passed in, and the batching choice (`take_batch`) is a plain function.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# Prepared inputs and, per input, whether to L2-normalise its vector -> the vectors, in order.
Forward = Callable[[list[list[int]], list[bool]], list[list[float]]]


def take_batch(lengths: Sequence[int], max_inputs: int, max_padded_tokens: int) -> int:
    """How many of the queued inputs (their token counts, in arrival order) the next forward takes: the
    longest prefix within `max_inputs` whose padded size (count x longest) is within `max_padded_tokens`,
    and always at least one (an input alone always fits: the model's context bounds it)."""
    longest = 0
    for taken, length in enumerate(lengths[:max_inputs]):
        longest = max(longest, length)
        if taken and (taken + 1) * longest > max_padded_tokens:
            return taken
    return min(len(lengths), max_inputs)


@dataclass(eq=False)
class _Job:
    """One caller's request: its vectors fill in as the forwards that carry its inputs finish."""

    future: asyncio.Future[list[list[float]]]
    vectors: list[list[float]] = field(default_factory=list)
    remaining: int = 0


@dataclass(slots=True)
class _Input:
    job: _Job
    index: int
    ids: list[int]
    normalize: bool


class EmbedBatcher:
    def __init__(
        self,
        forward: Forward,
        max_inputs: int,
        max_padded_tokens: int,
        run_forward: Callable[..., Awaitable[list[list[float]]]] = asyncio.to_thread,
    ) -> None:
        self._forward = forward
        self._run_forward = run_forward  # how a forward leaves the event loop (the worker: ModelThread)
        self._max_inputs = max_inputs
        self._max_padded_tokens = max_padded_tokens
        self._queue: deque[_Input] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.forwards = 0  # forward passes run: fewer than requests when callers were batched
        self.in_flight = 0  # requests submitted and not yet answered

    def start(self) -> EmbedBatcher:
        self._task = asyncio.create_task(self._run(), name="embed-batcher")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def embed(self, prepared: list[list[int]], normalize: bool = True) -> list[list[float]]:
        """The vectors of one caller's prepared inputs, in order."""
        job = _Job(asyncio.get_running_loop().create_future(), [[] for _ in prepared], len(prepared))
        self._queue.extend(_Input(job, index, ids, normalize) for index, ids in enumerate(prepared))
        self.in_flight += 1
        self._wake.set()
        try:
            return await job.future
        finally:
            self.in_flight -= 1

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._next_batch()
                if batch:
                    await self._embed(batch)

    def _next_batch(self) -> list[_Input]:
        # A caller that went away (its future cancelled) needs none of its inputs any more.
        while self._queue and self._queue[0].job.future.done():
            self._queue.popleft()
        lengths = [len(item.ids) for item in itertools.islice(self._queue, self._max_inputs)]
        taken = [
            self._queue.popleft()
            for _ in range(take_batch(lengths, self._max_inputs, self._max_padded_tokens))
        ]
        return [item for item in taken if not item.job.future.done()]

    async def _embed(self, batch: list[_Input]) -> None:
        self.forwards += 1
        try:
            vectors = await self._run_forward(
                self._forward, [item.ids for item in batch], [item.normalize for item in batch]
            )
        except Exception as exc:  # a failed forward fails the requests it carried, not the collector
            logger.exception("embedding forward failed")
            for job in {item.job for item in batch}:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        for item, vector in zip(batch, vectors, strict=True):
            job = item.job
            job.vectors[item.index] = vector
            job.remaining -= 1
            if job.remaining == 0 and not job.future.done():
                job.future.set_result(job.vectors)
