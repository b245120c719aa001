"""The embedding worker's batching across callers: which queued inputs the next forward takes, and that
concurrent callers share forwards and each gets its own vectors back. No process, no model: the forward
is a function that records what it was given."""

from __future__ import annotations

import asyncio
import threading

import pytest

from models_registry.worker.embed_batcher import EmbedBatcher, take_batch


def test_take_batch_fills_up_to_the_input_count():
    assert take_batch([3, 3, 3, 3, 3], max_inputs=4, max_padded_tokens=1000) == 4
    assert take_batch([3, 3], max_inputs=4, max_padded_tokens=1000) == 2


def test_take_batch_counts_padding_to_the_longest_input():
    # 3 inputs padded to 10 tokens = 30 > 25: the third input waits for the next forward.
    assert take_batch([2, 10, 2, 2], max_inputs=8, max_padded_tokens=25) == 2
    assert take_batch([10, 10, 10], max_inputs=8, max_padded_tokens=30) == 3


def test_take_batch_always_takes_one_input_even_over_the_budget():
    assert take_batch([500, 1], max_inputs=8, max_padded_tokens=100) == 1


class RecordingForward:
    """A forward whose vector of an input is [sum of its ids, its length]; it records each batch, and
    waits on a gate so the test can let callers queue up behind a running forward."""

    def __init__(self) -> None:
        self.batches: list[list[list[int]]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: list[list[int]], normalize: list[bool]) -> list[list[float]]:
        self.gate.wait(5)
        self.batches.append(batch)
        return [[float(sum(ids)), float(len(ids))] for ids in batch]


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_callers_that_arrive_together_share_one_forward():
    forward = RecordingForward()

    async def scenario() -> list[list[list[float]]]:
        batcher = EmbedBatcher(forward, max_inputs=64, max_padded_tokens=10_000).start()
        try:
            return await asyncio.gather(*(batcher.embed([[i, i], [i]]) for i in range(1, 9)))
        finally:
            await batcher.stop()

    answers = run(scenario())
    assert answers == [[[2.0 * i, 2.0], [float(i), 1.0]] for i in range(1, 9)]
    assert len(forward.batches) == 1 and len(forward.batches[0]) == 16


def test_callers_queued_behind_a_running_forward_go_together_in_the_next():
    forward = RecordingForward()

    async def scenario() -> int:
        batcher = EmbedBatcher(forward, max_inputs=64, max_padded_tokens=10_000).start()
        try:
            forward.gate.clear()
            first = asyncio.create_task(batcher.embed([[1]]))
            await asyncio.sleep(0.05)  # the first forward is running (held at the gate)
            rest = [asyncio.create_task(batcher.embed([[i]])) for i in range(2, 7)]
            await asyncio.sleep(0.05)
            forward.gate.set()
            await asyncio.gather(first, *rest)
            assert [len(batch) for batch in forward.batches] == [1, 5]
            return batcher.forwards
        finally:
            await batcher.stop()

    assert run(scenario()) == 2


def test_a_large_request_is_spread_over_forwards_within_the_limits():
    forward = RecordingForward()

    async def scenario() -> list[list[float]]:
        batcher = EmbedBatcher(forward, max_inputs=4, max_padded_tokens=10_000).start()
        try:
            return await batcher.embed([[i] for i in range(10)])
        finally:
            await batcher.stop()

    assert run(scenario()) == [[float(i), 1.0] for i in range(10)]
    assert [len(batch) for batch in forward.batches] == [4, 4, 2]


def test_a_failed_forward_fails_its_callers_and_the_batcher_goes_on():
    calls = 0

    def flaky(batch: list[list[int]], normalize: list[bool]) -> list[list[float]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("out of memory")
        return [[1.0] for _ in batch]

    async def scenario() -> list[list[float]]:
        batcher = EmbedBatcher(flaky, max_inputs=4, max_padded_tokens=10_000).start()
        try:
            with pytest.raises(RuntimeError):
                await batcher.embed([[1]])
            return await batcher.embed([[2]])
        finally:
            await batcher.stop()

    assert run(scenario()) == [[1.0]]


def test_inputs_of_a_caller_that_went_away_are_not_embedded():
    forward = RecordingForward()

    async def scenario() -> None:
        batcher = EmbedBatcher(forward, max_inputs=1, max_padded_tokens=10_000).start()
        try:
            forward.gate.clear()
            first = asyncio.create_task(batcher.embed([[1]]))
            await asyncio.sleep(0.05)
            gone = asyncio.create_task(batcher.embed([[7], [7], [7]]))
            await asyncio.sleep(0.01)
            gone.cancel()
            forward.gate.set()
            await first
            assert batcher.in_flight == 0
        finally:
            await batcher.stop()

    run(scenario())
    assert forward.batches == [[[1]]]
