"""Embeddings from an encoder model: mean pooling over the tokens, optionally L2-normalized.

This is what sentence-transformers does for models like all-MiniLM-L6-v2, written against
transformers' AutoModel directly. torch + transformers only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from models_registry.engine.loader import pick_dtype
from models_registry.engine.params import ContextLengthExceeded

MAX_BATCH = 64  # inputs per forward pass


class Embedder:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.max_tokens = min(
            getattr(model.config, "max_position_embeddings", None) or 512,
            tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else 512,
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Embedder:
        target = torch.device(device)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, dtype=pick_dtype(target), local_files_only=True)
        return cls(model.to(target).eval(), tokenizer)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]

    @torch.inference_mode()
    def embed(self, texts: list[str], normalize: bool = True) -> tuple[list[list[float]], int]:
        """Vectors for `texts` and the tokens they took. An input longer than the model reads is refused,
        not silently cut."""
        counts = self.count_tokens(texts)
        for count in counts:
            if count > self.max_tokens:
                raise ContextLengthExceeded(count, 0, self.max_tokens)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), MAX_BATCH):
            batch = self.tokenizer(texts[start : start + MAX_BATCH], padding=True, return_tensors="pt")
            batch = {key: value.to(self.device) for key, value in batch.items()}
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
            vectors.extend(pooled.float().cpu().tolist())
        return vectors, sum(counts)
