"""A tenant's chunks in memory, searchable by meaning and by words: FAISS inner product on L2-normalised
vectors (so a score is the cosine similarity), stored as float16 (half the memory and half the time of a
float32 scan, which is bound by memory bandwidth; the same top 10 as float32 for 999 queries in 1000 at
100k chunks), under IndexIDMap2 so that each vector's id is its chunk's id; and the lexical index.

The index knows which chunks each document has and its collection (a document's chunks are written once,
when it becomes ready, and only ever deleted with it), so bringing an index up to date is a difference of
document sets: remove the chunks of documents gone, add those of documents new; and a collection filter
needs no database.

A large tenant's vectors go into an inverted file instead (FAISS IVF, the same float16 codes and scores):
past `ann_min_vectors` a scan of every vector is the slowest part of a search (4.4 ms at 100k on one
thread), while the inverted file scans the third of its lists nearest the query (1.4 ms). Its centroids
are trained on the tenant's own vectors when it crosses that size, and again whenever it has grown or
shrunk fourfold since. A filter that lets through less than a quarter of the vectors probes every list
(exact over what it allows: a third of the lists would hold too few of a narrow filter's chunks). Against
the exact scan, on real all-MiniLM-L6-v2 embeddings of 29.6k passages of English: 98.3% of the top 4
and 97.7% of the top 50 are the same (bench/RESULTS.md, "Knowledge base").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import faiss
import numpy as np

from llm_platform.knowledge.lexical import LexicalIndex

if TYPE_CHECKING:
    from llm_platform.knowledge.store import Home

_LISTS_PER_SQRT = 2  # lists: twice the square root of the vectors trained on
_PROBED_FRACTION = 3  # the lists an unfiltered search probes: 1 / this of them
_NARROW_FILTER = 4  # a filter letting through under 1 / this of the vectors is searched exactly
_REBUILD_FACTOR = 4  # retrain when the vectors have grown or shrunk this much since the last training
_TRAINING_POINTS_PER_LIST = 64  # k-means sample: enough for centroids, bounded in time
_MIN_POINTS_PER_LIST = 39  # FAISS's own floor for training a centroid without a warning
_ANN_FLOOR = 1_000  # the fewest vectors an inverted file is made for (25 lists)


@dataclass(frozen=True, slots=True)
class IndexedDocument:
    collection_id: uuid.UUID
    chunk_ids: np.ndarray  # int64


class TenantIndex:
    def __init__(self, dim: int, ann_min_vectors: int, version: int = -1, home: Home | None = None) -> None:
        """`home`: the directory the index is kept in between processes (store.py); None: memory only."""
        self.dim = dim
        self.version = version  # the tenant's version in the database this index reflects
        # LLMP_KNOWLEDGE_ANN_MIN_CHUNKS; 0: never an inverted file. Never below _ANN_FLOOR: a scan of
        # fewer vectors takes microseconds, and too few train no useful lists.
        self.ann_min_vectors = max(ann_min_vectors, _ANN_FLOOR) if ann_min_vectors else 0
        self.dense: faiss.Index = _flat(dim)
        self.trained_on = 0  # vectors the inverted file's centroids were trained on; 0 while flat
        self.home = home
        self.saved = False  # whether `home` holds a snapshot of exactly this (Home.save)
        self.lexical = LexicalIndex(home.lexical if home is not None else None)
        self.documents: dict[uuid.UUID, IndexedDocument] = {}
        self.collections: dict[uuid.UUID, set[uuid.UUID]] = {}  # each collection's documents here

    def restore(
        self, dense: faiss.Index, trained_on: int, documents: dict[uuid.UUID, IndexedDocument]
    ) -> None:
        """The dense part and documents of a snapshot whose lexical part this index opened (Home.load)."""
        self.dense, self.trained_on, self.documents = dense, trained_on, documents
        for document_id, document in documents.items():
            self.collections.setdefault(document.collection_id, set()).add(document_id)
        self.saved = True

    def __len__(self) -> int:
        return int(self.dense.ntotal)

    def add(
        self,
        document_id: uuid.UUID,
        collection_id: uuid.UUID,
        chunk_ids: np.ndarray,
        vectors: np.ndarray,
        texts: list[str],
    ) -> None:
        """Adds a document's chunks (vectors already normalised, one row and one text per chunk id);
        searchable by words after `commit`."""
        self._changing()
        if document_id in self.documents:
            self.remove(document_id)
        ids = np.ascontiguousarray(chunk_ids, dtype=np.int64)
        self.dense.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self.lexical.add(document_id, ids.tolist(), texts)
        self.documents[document_id] = IndexedDocument(collection_id, ids)
        self.collections.setdefault(collection_id, set()).add(document_id)

    def remove(self, document_id: uuid.UUID) -> None:
        if document_id not in self.documents:
            return
        self._changing()
        document = self.documents.pop(document_id)
        members = self.collections[document.collection_id]
        members.discard(document_id)
        if not members:
            del self.collections[document.collection_id]
        if len(document.chunk_ids):
            # An inverted file's id map removes by an array of ids (one lookup each); a flat index's
            # removal tests every id it holds against the selector, which a batch answers by hashing.
            kind = faiss.IDSelectorArray if self.inverted else faiss.IDSelectorBatch
            self.dense.remove_ids(kind(document.chunk_ids))
            self.lexical.remove(document_id)

    def commit(self) -> None:
        """Makes the changes searchable by words, and retrains the dense index if its size calls for it."""
        self.lexical.commit()
        count = len(self)
        if self.trained_on:
            stale = count >= self.trained_on * _REBUILD_FACTOR or count * _REBUILD_FACTOR <= self.trained_on
        else:
            stale = self._wants_inverted(count)
        if stale:
            self._rebuild()

    def _changing(self) -> None:
        """Before a change: a saved snapshot stops being one (its state goes first, so a process that
        dies mid-change leaves a home that is rebuilt, never one whose files disagree)."""
        if self.saved and self.home is not None:
            self.home.discard_state()
        self.saved = False

    @property
    def inverted(self) -> bool:
        return self.trained_on > 0

    def _wants_inverted(self, count: int) -> bool:
        return 0 < self.ann_min_vectors <= count

    def _rebuild(self) -> None:
        """The same vectors in a new dense index: an inverted file trained on them, or flat again when
        too few are left for one."""
        if not self.documents:
            self.dense, self.trained_on = _flat(self.dim), 0
            return
        ids = np.concatenate([d.chunk_ids for d in self.documents.values()]).astype(np.int64)
        vectors = self.dense.reconstruct_batch(ids)
        if self._wants_inverted(len(ids)):
            self.dense, self.trained_on = _inverted_file(self.dim, vectors), len(ids)
        else:
            self.dense, self.trained_on = _flat(self.dim), 0
        self.dense.add_with_ids(vectors, ids)

    def allowed(
        self, collection_ids: list[uuid.UUID] | None, documents: list[uuid.UUID] | None
    ) -> set[uuid.UUID] | None:
        """The documents a filter lets through: by collection (known here) and, when given, among
        `documents` (a metadata filter's answer); None when that is every document (no filter to apply)."""
        if collection_ids is None and documents is None:
            return None
        if documents is None:  # by collection alone, without a pass over every document (one a search)
            wanted = [self.collections[c] for c in set(collection_ids or ()) if c in self.collections]
            if sum(map(len, wanted)) == len(self.documents):
                return None
            return set().union(*wanted)
        allowed = set(documents) & self.documents.keys()
        if collection_ids is not None:
            chosen = set(collection_ids)
            allowed = {d for d in allowed if self.documents[d].collection_id in chosen}
        return None if len(allowed) == len(self.documents) else allowed

    def search(
        self, query: np.ndarray, k: int, documents: set[uuid.UUID] | None = None
    ) -> list[tuple[int, float]]:
        """The `k` nearest chunks as (chunk id, cosine), best first; only `documents`' when given (the
        filter restricts the candidates, so a filtered search still finds k when k match)."""
        if not len(self) or k <= 0:
            return []
        selector, allowed_count = None, len(self)
        if documents is not None:
            allowed = [self.documents[d].chunk_ids for d in documents if d in self.documents]
            if not allowed:
                return []
            ids = np.concatenate(allowed)
            selector, allowed_count = faiss.IDSelectorBatch(ids), len(ids)
        if self.inverted:
            lists = self.dense.nlist
            narrow = allowed_count * _NARROW_FILTER < len(self)
            probes = lists if narrow else max(1, lists // _PROBED_FRACTION)
            params: faiss.SearchParameters | None = faiss.SearchParametersIVF(sel=selector, nprobe=probes)
        else:
            params = None if selector is None else faiss.SearchParameters(sel=selector)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        # One thread: FAISS's second OpenMP thread scanned 100k vectors no faster (5.0 against 5.2 ms)
        # and its helper then spun for ~12 ms of CPU per search, taken from the API's other requests and
        # the processes it shares cores with. Set on the thread that searches (an OpenMP setting is
        # per thread).
        faiss.omp_set_num_threads(1)
        wanted = min(k, allowed_count)
        scores, ids = self.dense.search(query, wanted, params=params)
        if isinstance(params, faiss.SearchParametersIVF) and (ids[0] >= 0).sum() < wanted:
            # The lists probed held fewer than k of what the filter allows: every list, then.
            params.nprobe = self.dense.nlist
            scores, ids = self.dense.search(query, wanted, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def _flat(dim: int) -> faiss.Index:
    flat16 = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexIDMap2(flat16)


def _inverted_file(dim: int, vectors: np.ndarray) -> faiss.Index:
    """An inverted file trained on `vectors`: centroids (2 sqrt(n) lists, of 39 vectors or more),
    float16 codes of the vectors themselves (not residuals: float16 keeps them to the flat index's
    precision), and an id map that can give vectors back (for the next rebuild) and remove them."""
    # At least _MIN_POINTS_PER_LIST vectors a list: fewer train poor centroids (and FAISS says so).
    lists = max(1, min(int(_LISTS_PER_SQRT * np.sqrt(len(vectors))), len(vectors) // _MIN_POINTS_PER_LIST))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT, False
    )
    index.cp.max_points_per_centroid = _TRAINING_POINTS_PER_LIST
    index.train(vectors)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    return index


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
