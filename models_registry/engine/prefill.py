"""What a prefill forward is given: prompts left-padded into one batch, after a cached prefix they share
(or none), and what each prompt keeps of it afterwards."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, PretrainedConfig

from models_registry.engine.prefix_cache import LayerStates


def prefill_cache(config: PretrainedConfig, past: LayerStates | None, rows: int = 1) -> DynamicCache:
    """A transformers prefill's cache: holding `past` (a cached prefix's KV, or a long prompt's chunks
    so far) for each of `rows` prompts, or empty."""
    cache = DynamicCache(config=config)
    if past is not None:
        for layer, (keys, values) in enumerate(past):
            # The forward's own update concatenates into new tensors: the cached entry is never written.
            cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), layer)
    return cache


@dataclass(frozen=True)
class PaddedBatch:
    """Prompts from token `start` on (the tokens before it are a cached prefix they all share), each
    left-padded to the longest: the padding sits between the prefix and each prompt's own tokens."""

    start: int
    lengths: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor  # over the prefix and the padded tokens
    position_ids: torch.Tensor

    @classmethod
    def of(cls, prompts: list[list[int]], start: int = 0) -> PaddedBatch:
        lengths = [len(prompt) - start for prompt in prompts]
        width = max(lengths)
        input_ids = torch.zeros(len(prompts), width, dtype=torch.long)
        attention_mask = torch.zeros(len(prompts), start + width, dtype=torch.long)
        attention_mask[:, :start] = 1
        position_ids = torch.zeros(len(prompts), width, dtype=torch.long)
        for row, (prompt, length) in enumerate(zip(prompts, lengths, strict=True)):
            input_ids[row, width - length :] = torch.tensor(prompt[start:])
            attention_mask[row, start + width - length :] = 1
            position_ids[row, width - length :] = torch.arange(start, start + length)
        return cls(start, lengths, input_ids, attention_mask, position_ids)

    def inputs(self, device: torch.device) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids.to(device),
            "attention_mask": self.attention_mask.to(device),
            "position_ids": self.position_ids.to(device),
        }

    def row_states(self, states: LayerStates, row: int) -> LayerStates:
        """One prompt's keys and values after the forward (`states`: the batch's, per layer): the
        prefix's, then its own (no padding)."""
        own = slice(self.input_ids.shape[1] - self.lengths[row], None)
        return [(self._joined(keys, row, own), self._joined(values, row, own)) for keys, values in states]

    def _joined(self, states: torch.Tensor, row: int, own: slice) -> torch.Tensor:
        mine = states[row : row + 1, :, self.start :][:, :, own]
        return torch.cat([states[row : row + 1, :, : self.start], mine], dim=-2) if self.start else mine
