"""Sampling parameters are applied per row of a batch."""

from __future__ import annotations

import torch

from models_registry.engine.params import SamplingParams
from models_registry.engine.sampler import RowState, sample_next_tokens


def _row(**params) -> RowState:  # type: ignore[no-untyped-def]
    return RowState.create(SamplingParams(**params), prompt_ids=[1, 2])


def test_each_row_uses_its_own_parameters():
    logits = torch.tensor([[0.0, 5.0, 4.9, 0.0], [0.0, 5.0, 4.9, 0.0]])
    greedy = _row(temperature=0)
    penalized = _row(temperature=0, frequency_penalty=1.0)
    penalized.record(1)  # token 1 was generated once: 5.0 - 1.0 < 4.9
    tokens = sample_next_tokens(logits, [greedy, penalized], torch.Generator().manual_seed(0))
    assert tokens == [1, 2]


def test_presence_and_repetition_penalties():
    logits = torch.tensor([[0.0, 3.0, 2.5, 0.0]])
    presence = _row(temperature=0, presence_penalty=1.0)
    presence.record(1)
    assert sample_next_tokens(logits.clone(), [presence], torch.Generator())[0] == 2
    repetition = RowState.create(SamplingParams(temperature=0, repetition_penalty=2.0), prompt_ids=[1])
    assert sample_next_tokens(logits.clone(), [repetition], torch.Generator())[0] == 2  # 3.0 / 2 < 2.5


def test_top_k_one_and_tiny_top_p_are_greedy():
    logits = torch.randn(8, 50)
    expected = logits.argmax(dim=-1).tolist()
    for params in ({"temperature": 1.0, "top_k": 1}, {"temperature": 1.0, "top_p": 1e-6}):
        rows = [_row(**params) for _ in range(8)]
        assert sample_next_tokens(logits.clone(), rows, torch.Generator().manual_seed(3)) == expected


def test_sampling_follows_the_distribution():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    logits = probs.log().unsqueeze(0).repeat(4000, 1)
    rows = [_row(temperature=1.0) for _ in range(4000)]
    counts = torch.bincount(
        torch.tensor(sample_next_tokens(logits, rows, torch.Generator().manual_seed(0))), minlength=4
    )
    observed = counts.float() / counts.sum()
    assert counts[1] == 0  # a zero-probability token is never drawn
    assert torch.allclose(observed, probs, atol=0.03)


def test_seeded_rows_do_not_depend_on_their_neighbours():
    logits = torch.randn(3, 100)
    alone = sample_next_tokens(
        logits[1:2].clone(), [_row(temperature=1.0, seed=42)], torch.Generator().manual_seed(1)
    )
    together = sample_next_tokens(
        logits.clone(),
        [_row(temperature=1.0), _row(temperature=1.0, seed=42), _row(temperature=1.0)],
        torch.Generator().manual_seed(2),
    )
    assert together[1] == alone[0]
