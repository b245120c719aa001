"""Turns a batch of next-token logits into tokens, honouring each row's own sampling parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models_registry.engine.params import SamplingParams


@dataclass
class RowState:
    """What sampling needs to remember about one sequence."""

    params: SamplingParams
    prompt_ids: torch.Tensor  # 1-D, for the repetition penalty
    generator: torch.Generator | None  # seeded rows own one, so their draws do not depend on neighbours
    generated_counts: dict[int, int]

    @classmethod
    def create(cls, params: SamplingParams, prompt_ids: list[int]) -> RowState:
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(params.seed)
        return cls(params, torch.tensor(prompt_ids, dtype=torch.long), generator, {})

    def record(self, token_id: int) -> None:
        self.generated_counts[token_id] = self.generated_counts.get(token_id, 0) + 1


def _apply_penalties(logits: torch.Tensor, row: RowState) -> None:
    """In place, on one row's logits (1-D)."""
    params = row.params
    if params.repetition_penalty != 1.0:
        seen = torch.cat(
            [row.prompt_ids, torch.tensor(list(row.generated_counts), dtype=torch.long)]
        ).unique()
        seen = seen.to(logits.device)
        scores = logits[seen]
        logits[seen] = torch.where(
            scores > 0, scores / params.repetition_penalty, scores * params.repetition_penalty
        )
    if row.generated_counts and (params.presence_penalty or params.frequency_penalty):
        ids = torch.tensor(list(row.generated_counts), dtype=torch.long, device=logits.device)
        counts = torch.tensor(list(row.generated_counts.values()), dtype=logits.dtype, device=logits.device)
        logits[ids] -= params.presence_penalty + params.frequency_penalty * counts


def _filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """One row (1-D): keeps the top-k tokens and the smallest set whose probability reaches top_p."""
    if top_k > 0 and top_k < logits.shape[-1]:
        threshold = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens before it already reach top_p (the first is always kept).
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next_tokens(logits: torch.Tensor, rows: list[RowState], generator: torch.Generator) -> list[int]:
    """logits: (batch, vocab) for the last position of each row. Returns one token id per row."""
    logits = logits.float()
    for index, row in enumerate(rows):
        if row.params.penalized:
            _apply_penalties(logits[index], row)

    tokens = torch.argmax(logits, dim=-1)
    sampled = [i for i, row in enumerate(rows) if not row.params.greedy]
    if sampled:
        temperatures = torch.tensor([rows[i].params.temperature for i in sampled], dtype=logits.dtype)
        scaled = logits[sampled] / temperatures.unsqueeze(-1).to(logits.device)
        for position, index in enumerate(sampled):
            params = rows[index].params
            if params.top_k or params.top_p < 1.0:
                scaled[position] = _filter_top_k_top_p(scaled[position], params.top_k, params.top_p)
        # One uniform per row: seeded rows draw from their own generator, the rest from the engine's.
        uniforms = torch.rand(len(sampled), generator=generator)
        for position, index in enumerate(sampled):
            if rows[index].generator is not None:
                uniforms[position] = torch.rand(1, generator=rows[index].generator)[0]
        draws = _inverse_cdf_sample(torch.softmax(scaled, dim=-1).cpu(), uniforms)
        tokens[sampled] = draws.to(tokens.device)
    return tokens.tolist()


def _inverse_cdf_sample(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Draws one token per row with one uniform number each.

    Same distribution as torch.multinomial, which spends a random number per vocabulary entry where
    this spends one per row (what that costs a step: bench/RESULTS.md, engine).
    """
    cumulative = probs.cumsum(dim=-1)
    targets = (uniforms * cumulative[:, -1]).unsqueeze(-1)
    # right=True: a zero-probability token never wins, even at u == 0.
    return torch.searchsorted(cumulative, targets, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)
