"""The KV of recent prompts, per tenant, so a prompt that starts like one of them prefills only the rest.

A platform sends the same system prompt, knowledge-base preamble or conversation history over and over;
prefilling them again is most of a turn's time to first token. Causal attention makes the keys and values
of a prompt's first n tokens depend on those n tokens alone, so any entry's first n positions serve any
prompt that begins with the same n tokens, at any n (no fixed block size).

Entries belong to one tenant: a lookup never sees another tenant's prompts, so neither their content nor
the timing of a hit can leak across tenants. Memory is bounded (least recently used entries go first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

LayerStates = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (1, heads, tokens, dim)


@dataclass(frozen=True)
class PrefixHit:
    entry: int  # which entry: prompts hitting the same entry at the same length share the states
    tokens: int  # how many of the prompt's first tokens the states cover
    states: LayerStates


@dataclass
class _Entry:
    tenant: str
    tokens: list[int]
    states: LayerStates
    nbytes: int


def common_prefix_length(a: list[int], b: list[int]) -> int:
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit


class PrefixCache:
    def __init__(self, max_bytes: int, min_tokens: int = 32) -> None:
        self.max_bytes = max_bytes
        self.min_tokens = min_tokens  # a shorter match saves less than a prefill forward of its own costs
        self.nbytes = 0
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # oldest first
        self._next_key = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, tenant: str, prompt: list[int]) -> PrefixHit | None:
        """The longest cached start of `prompt` among `tenant`'s entries, leaving at least its last token
        to prefill (the first sampled token needs that position's logits)."""
        usable = prompt[:-1]
        best_key, best_length = None, 0
        for key, entry in self._entries.items():
            if entry.tenant != tenant or not usable or entry.tokens[0] != usable[0]:
                continue
            length = common_prefix_length(entry.tokens, usable)
            if length > best_length:
                best_key, best_length = key, length
        if best_key is None or best_length < self.min_tokens:
            return None
        self._entries.move_to_end(best_key)
        states = [(k[:, :, :best_length], v[:, :, :best_length]) for k, v in self._entries[best_key].states]
        return PrefixHit(best_key, best_length, states)

    def keeps(self, prompt: list[int], reused: int = 0) -> bool:
        """Whether `store` would keep this prompt (asked first: taking a prompt's states out of its
        batch costs a copy per layer).

        A prompt that reused `reused` tokens of an entry is kept only if it adds at least min_tokens of
        its own: 32 turns on one system prompt keep that prompt once, not 32 times; a conversation's
        next turn, which adds the last answer and question, is kept.
        """
        return self.max_bytes > 0 and len(prompt) - reused >= self.min_tokens

    def store(self, tenant: str, prompt: list[int], states: LayerStates, reused: int = 0) -> None:
        """Keeps a prefilled prompt's states (copied: the caller's may be views of a larger buffer),
        if it `keeps` them."""
        if not self.keeps(prompt, reused):
            return
        nbytes = sum(k.nbytes + v.nbytes for k, v in states)
        if nbytes > self.max_bytes:
            return
        while self.nbytes + nbytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= evicted.nbytes
        copied = [(k.clone(), v.clone()) for k, v in states]
        self._entries[self._next_key] = _Entry(tenant, list(prompt), copied, nbytes)
        self._next_key += 1
        self.nbytes += nbytes
