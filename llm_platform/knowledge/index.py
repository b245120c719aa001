"""A tenant's vectors in memory: FAISS inner product (IndexFlatIP) on L2-normalised float32 vectors,
so a score is the cosine similarity, under IndexIDMap2 so that each vector's id is its chunk's id.

The index knows which chunks each document has (a document's chunks are written once, when it becomes
ready, and only ever deleted with it), so bringing an index up to date is a difference of document sets:
remove the chunks of documents gone, add those of documents new. It is saved as two files, the FAISS
index and a JSON sidecar (version, documents and their chunk ids), written aside and renamed into place.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import faiss
import numpy as np


class TenantIndex:
    def __init__(self, dim: int, version: int = -1) -> None:
        self.dim = dim
        self.version = version  # the tenant's version in the database this index reflects
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.documents: dict[uuid.UUID, np.ndarray] = {}  # document id -> its chunk ids (int64)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, document_id: uuid.UUID, chunk_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Adds a document's chunks (vectors already normalised, one row per chunk id)."""
        if document_id in self.documents:
            self.remove(document_id)
        ids = np.ascontiguousarray(chunk_ids, dtype=np.int64)
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self.documents[document_id] = ids

    def remove(self, document_id: uuid.UUID) -> None:
        ids = self.documents.pop(document_id, None)
        if ids is not None and len(ids):
            self.index.remove_ids(faiss.IDSelectorBatch(ids))

    def search(
        self, query: np.ndarray, k: int, documents: set[uuid.UUID] | None = None
    ) -> list[tuple[int, float]]:
        """The `k` nearest chunks as (chunk id, cosine), best first; only `documents`' when given (the
        filter restricts the candidates, so a filtered search still finds k when k match)."""
        if not len(self) or k <= 0:
            return []
        params = None
        if documents is not None:
            allowed = [self.documents[d] for d in documents if d in self.documents]
            if not allowed:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.concatenate(allowed)))
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self.index.search(query, min(k, len(self)), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def save(self, path: Path) -> None:
        """Writes the index and its sidecar aside, then renames them into place (sidecar last: a reader
        that finds a sidecar finds its index)."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        faiss.write_index(self.index, str(scratch))
        os.replace(scratch, path)
        sidecar = {
            "version": self.version,
            "dim": self.dim,
            "documents": {str(d): ids.tolist() for d, ids in self.documents.items()},
        }
        meta = _sidecar(path)
        meta_scratch = meta.with_name(f".{meta.name}.{os.getpid()}")
        meta_scratch.write_text(json.dumps(sidecar), encoding="utf-8")
        os.replace(meta_scratch, meta)

    @classmethod
    def load(cls, path: Path) -> TenantIndex | None:
        """The index saved at `path`, or None when there is none or it does not add up."""
        try:
            sidecar = json.loads(_sidecar(path).read_text(encoding="utf-8"))
            index = faiss.read_index(str(path))
        except (OSError, ValueError, RuntimeError):
            return None
        loaded = cls(int(sidecar["dim"]), int(sidecar["version"]))
        loaded.index = index
        loaded.documents = {
            uuid.UUID(d): np.asarray(ids, dtype=np.int64) for d, ids in sidecar["documents"].items()
        }
        if index.d != loaded.dim or index.ntotal != sum(len(ids) for ids in loaded.documents.values()):
            return None
        return loaded


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    faiss.normalize_L2(vectors)
    return vectors


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Fuses ranked lists of ids: each id scores the sum of 1 / (k + rank) over the lists it is in
    (rank from 1), best first; ties keep the order in which ids were first seen."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
