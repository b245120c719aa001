"""Embeddings from an encoder model: mean pooling over the attention mask, then L2 normalisation.

This is what sentence-transformers does for models like all-MiniLM-L6-v2 (its modules.json: Transformer,
Pooling with mean tokens, Normalize), written against transformers' AutoModel directly. torch +
transformers only.

The work is split in two so the worker can batch across callers: `prepare` turns one caller's inputs into
token ids (and refuses what the model cannot read), `forward` embeds any mix of prepared inputs in one
padded forward pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from models_registry.engine import bert
from models_registry.engine.loader import wants_bf16, weights_dtype
from models_registry.engine.packed import is_packed, pack_linear_layers
from models_registry.engine.params import ContextLengthExceeded, InvalidParameter

MAX_BATCH = 64  # inputs per forward pass of `embed`
# A forward of at most this many padded tokens (a search query, a few short inputs) runs on one CPU
# thread. With two, libgomp's helper keeps spinning ~12 ms after the forward's 6 ms (all-MiniLM-L6-v2,
# one 16-token query: 2 threads 5.8-6.7 ms wall, 18-20 ms of CPU; 1 thread 7.7 ms wall and CPU), and on
# a node the worker shares with the API and the database that spin takes the core they need. Larger
# forwards keep every thread: 16 inputs of 200 tokens take 280-320 ms on two threads, 510 on one.
SMALL_FORWARD_TOKENS = 128
_UNBOUNDED = 1_000_000  # what tokenizers report as model_max_length when they set none


class Embedder:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_seq_length: int | None = None,
        precision: str = "float32",
        prepack: bool = False,
    ) -> None:
        """`prepack` reorders the linear weights for oneDNN once (packed.py), in bf16 under autocast."""
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        # bfloat16 on a CPU: autocast (weights stay float32; matmuls run in bf16, norms and softmax in
        # float32). Measured on all-MiniLM-L6-v2, 256-token inputs, 2 vCPUs with AVX512-BF16: 2.3x the
        # float32 throughput, cosine >= 0.9999 to float32's vectors (bench/RESULTS.md). On a GPU the
        # weights are already bf16 (weights_dtype).
        self.autocast = wants_bf16(precision) and self.device.type == "cpu"  # checks `precision` anywhere
        if prepack:
            pack_linear_layers(model, torch.bfloat16 if self.autocast else None)
        # A BERT encoder's forward without transformers' Python around it (bert.py), over the weights as
        # packed above; other architectures run transformers' forward.
        self.bert = bert.BertForward(model) if bert.supports(model) else None  # type: ignore[arg-type]
        limits = [
            getattr(model.config, "max_position_embeddings", None) or 512,
            tokenizer.model_max_length if tokenizer.model_max_length < _UNBOUNDED else 512,
        ]
        if max_seq_length:
            limits.append(max_seq_length)
        self.max_tokens = min(limits)
        self.dimensions = int(model.config.hidden_size)
        self.threads = torch.get_num_threads()  # what a forward larger than SMALL_FORWARD_TOKENS uses
        self.vocab_size = len(tokenizer)
        self._prefix, self._suffix = _special_tokens(tokenizer)

    @classmethod
    def load(
        cls, path: str | Path, device: str = "cpu", precision: str = "float32", prepack: bool = True
    ) -> Embedder:
        """`precision` on a CPU: float32, bfloat16, or auto (bfloat16 where the CPU has it in hardware)."""
        target = torch.device(device)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, dtype=weights_dtype(target), local_files_only=True)
        max_length = _sentence_transformers_max_length(Path(path))
        return cls(model.to(target).eval(), tokenizer, max_length, precision, prepack)

    @property
    def packed(self) -> bool:
        """Whether the linear weights are reordered for oneDNN (`load`)."""
        return is_packed(self.model)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]

    def prepare(self, inputs: list[str] | list[list[int]]) -> list[list[int]]:
        """Each input's token ids, the model's special tokens included. Token ids given by the caller are
        the model's own vocabulary without special tokens (what its tokenizer makes of a text), so they
        embed exactly as that text does. An input longer than the model reads is refused, not cut."""
        if inputs and isinstance(inputs[0], str):
            prepared = self.tokenizer(inputs, add_special_tokens=True)["input_ids"]
        else:
            for ids in inputs:
                if any(not 0 <= token < self.vocab_size for token in ids):  # type: ignore[operator]
                    message = f"A token id is outside this model's vocabulary (0 to {self.vocab_size - 1})"
                    raise InvalidParameter("input", message)
            prepared = [[*self._prefix, *ids, *self._suffix] for ids in inputs]  # type: ignore[misc]
        for ids in prepared:
            if len(ids) > self.max_tokens:
                raise ContextLengthExceeded(len(ids), 0, self.max_tokens)
        return prepared

    @torch.inference_mode()
    def forward(self, batch: list[list[int]], normalize: Sequence[bool] | bool = True) -> list[list[float]]:
        """One padded forward pass over prepared inputs: padding is masked out of the mean, so a vector
        does not depend on what it was batched with. `normalize`: for all of them, or per input."""
        longest = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(batch), longest), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(1 if len(batch) * longest <= SMALL_FORWARD_TOKENS else self.threads)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            if self.bert is not None:
                hidden = self.bert(input_ids, attention_mask)
            else:
                hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.float() if self.autocast else hidden
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        flags = torch.tensor([normalize] * len(batch) if isinstance(normalize, bool) else list(normalize))
        normalized = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        pooled = torch.where(flags.to(self.device).unsqueeze(-1), normalized, pooled)
        return pooled.float().cpu().tolist()

    def embed(self, texts: list[str], normalize: bool = True) -> tuple[list[list[float]], int]:
        """Vectors for `texts` and the tokens they took, in forwards of MAX_BATCH inputs."""
        prepared = self.prepare(texts)
        vectors: list[list[float]] = []
        for start in range(0, len(prepared), MAX_BATCH):
            vectors.extend(self.forward(prepared[start : start + MAX_BATCH], normalize))
        return vectors, sum(len(ids) for ids in prepared)


def _special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text's own ([CLS] and [SEP] for BERT), found by
    tokenizing a probe with and without them (transformers 5 has no public method that says)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    return [], []


def _sentence_transformers_max_length(path: Path) -> int | None:
    """The sequence length the model was trained for, where sentence-transformers wrote it down (256
    for all-MiniLM-L6-v2, below the 512 positions BERT has)."""
    config = path / "sentence_bert_config.json"
    if not config.exists():
        return None
    value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    return value if isinstance(value, int) and value > 0 else None
