"""The batch KV cache keeps every row's keys in order through joins, leaves, compaction and widening."""

from __future__ import annotations

import random

import pytest
import torch

from models_registry.engine import kv_cache
from models_registry.engine.kv_cache import BatchKVCache

HEADS, DIM, LAYERS = 2, 3, 2


def _states(values: list[float]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, keys = value and values = -value (so both are checked), shape (1, heads, len, dim)."""
    column = torch.tensor(values).view(1, 1, -1, 1).expand(1, HEADS, -1, DIM)
    return [(column + layer, -(column + layer)) for layer in range(LAYERS)]


def _padded_group(
    prefix: list[float], group: list[list[float]]
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """As a padded prefill leaves a group: per row the shared prefix, NaN padding up to the longest
    prompt, then the prompt's own values; and which columns hold tokens."""
    width = max(len(own) for own in group)
    rows = torch.full((len(group), len(prefix) + width), float("nan"))
    tokens = torch.zeros(rows.shape, dtype=torch.bool)
    for row, own in enumerate(group):
        rows[row, : len(prefix)] = torch.tensor(prefix)
        rows[row, rows.shape[1] - len(own) :] = torch.tensor(own)
        tokens[row, : len(prefix)] = True
        tokens[row, rows.shape[1] - len(own) :] = True
    column = rows.view(len(group), 1, -1, 1).expand(-1, HEADS, -1, DIM)
    return [(column + layer, -(column + layer)) for layer in range(LAYERS)], tokens


def _row_contents(cache: BatchKVCache, row: int, layer: int) -> list[float]:
    mask = cache._mask[row, cache.start : cache.end]
    keys = cache._keys[layer][row, 0, cache.start : cache.end, 0][mask]
    values = cache._values[layer][row, 0, cache.start : cache.end, 0][mask]
    assert torch.equal(values, -keys)
    return (keys - layer).tolist()


@pytest.fixture
def nan_buffers(monkeypatch):  # type: ignore[no-untyped-def]
    """Key and value buffers are not initialised: make that memory NaN, the worst it could hold."""
    monkeypatch.setattr(
        kv_cache, "_buffer", lambda shape, dtype, device: torch.full(shape, float("nan"), dtype=dtype)
    )


def _window_is_finite(cache: BatchKVCache) -> bool:
    """What attention reads: every column of the window of every row, masked or not."""
    window = (slice(None, cache.rows), slice(None), slice(cache.start, cache.end))
    return all(torch.isfinite(t[window]).all() for t in (*cache._keys, *cache._values))


def test_random_joins_steps_and_leaves_keep_each_row_intact(nan_buffers):
    """Sequences join one by one or as a padded prefill's group (some after a shared prefix), decode
    steps and leave; attention never reads memory the cache has not written or zeroed (a masked NaN
    would still poison its row, and the group's padding arrives as NaN)."""
    rng = random.Random(7)
    cache = BatchKVCache(num_layers=LAYERS, max_rows=6, max_columns=200)
    expected: list[list[float]] = []  # per row: its tokens' values, in order
    next_value = 1.0
    for _ in range(400):
        action = rng.random()
        if action < 0.15 and cache.rows < 6:
            length = rng.randint(1, 40)
            values = [next_value + i for i in range(length)]
            next_value += length
            row = cache.add_sequence(_states(values))
            assert row == len(expected)
            expected.append(values)
            assert cache.positions[row] == length
        elif action < 0.25 and cache.rows < 4:
            prefix = [next_value + i for i in range(rng.choice([0, 0, 5]))]
            lengths = [rng.randint(1, 30) for _ in range(rng.randint(1, 6 - cache.rows))]
            next_value += len(prefix)
            group = []
            for length in lengths:
                group.append([next_value + i for i in range(length)])
                next_value += length
            states, tokens = _padded_group(prefix, group)
            row = cache.add_rows(states, tokens)
            assert row == len(expected)
            for offset, own in enumerate(group):
                expected.append(prefix + own)
                assert cache.positions[row + offset] == len(prefix) + len(own)
        elif action < 0.4 and cache.rows:
            row = rng.randrange(cache.rows)
            moved = cache.remove_row(row)
            last = expected.pop()
            if moved is not None:
                expected[row] = last
        elif cache.rows and max(len(e) for e in expected) < 150:
            mask, positions = cache.prepare_step()
            assert mask.shape == (cache.rows, cache.width + 1)
            assert positions.squeeze(-1).tolist() == [len(e) for e in expected]
            step_values = [next_value + i for i in range(cache.rows)]
            next_value += cache.rows
            column = torch.tensor(step_values).view(-1, 1, 1, 1).expand(-1, HEADS, 1, DIM)
            for layer in range(LAYERS):
                keys, values = cache.write_step(layer, column + layer, -(column + layer))
                assert keys.shape[2] == cache.width + 1
            cache.finish_step()
            for row, value in enumerate(step_values):
                expected[row].append(value)
        for row in range(cache.rows):
            for layer in range(LAYERS):
                assert _row_contents(cache, row, layer) == expected[row]
        assert _window_is_finite(cache)


def test_a_longer_prompt_joining_a_compacted_window_fits():
    cache = BatchKVCache(num_layers=LAYERS, max_rows=4, max_columns=100)
    cache.add_sequence(_states([1.0] * 30))
    cache.add_sequence(_states([2.0] * 5))
    cache.remove_row(0)  # the window now starts at column 25
    assert cache.start > 0
    cache.add_sequence(_states([3.0] * 60))
    assert _row_contents(cache, 0, 0) == [2.0] * 5
    assert _row_contents(cache, 1, 0) == [3.0] * 60


def _step(cache: BatchKVCache, value: float) -> None:
    cache.prepare_step()
    column = torch.full((cache.rows, HEADS, 1, DIM), value)
    for layer in range(LAYERS):
        cache.write_step(layer, column + layer, -(column + layer))
    cache.finish_step()


def test_a_long_prompt_joining_near_the_end_of_the_buffer_compacts_then_fits():
    cache = BatchKVCache(num_layers=LAYERS, max_rows=4, max_columns=1000)
    cache.add_sequence(_states([1.0] * 10))
    for _ in range(240):  # the write position nears the initial buffer's end (256 columns)
        _step(cache, 1.0)
    cache.add_sequence(_states([2.0] * 5))
    cache.remove_row(0)
    cache.add_sequence(_states([3.0] * 300))  # longer than `end`: the window must compact, then move
    assert _row_contents(cache, 0, 0) == [2.0] * 5
    assert _row_contents(cache, 1, 0) == [3.0] * 300
    _step(cache, 4.0)
    assert _row_contents(cache, 1, 1) == [3.0] * 300 + [4.0]


def test_an_idle_cache_keeps_its_buffers_unless_a_long_sequence_widened_them():
    cache = BatchKVCache(num_layers=LAYERS, max_rows=4, max_columns=1000)
    cache.add_sequence(_states([1.0] * 10))
    kept = cache.buffers()[0][0]
    assert kept.shape[0] == 4  # every row the batch may hold, from the start
    cache.remove_row(0)
    cache.add_sequence(_states([2.0] * 10))
    assert cache.buffers()[0][0].data_ptr() == kept.data_ptr()
    cache.add_sequence(_states([3.0] * 300))  # wider than the buffers: they are widened
    assert cache.buffers()[0][0].shape[2] > kept.shape[2]
    assert [_row_contents(cache, row, 1) for row in range(2)] == [[2.0] * 10, [3.0] * 300]
    cache.remove_row(1)
    cache.remove_row(0)
    assert cache.buffers() == ([], [])  # dropped once idle
