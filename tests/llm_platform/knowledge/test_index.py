"""Reciprocal rank fusion's arithmetic, and a tenant's FAISS index: add, remove, filtered search, save
and load."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from llm_platform.knowledge.index import TenantIndex, normalised, reciprocal_rank_fusion


def test_reciprocal_rank_fusion():
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert [item for item, _ in reciprocal_rank_fusion([[1, 2, 3], [3, 1]])] == [1, 3, 2]
    assert reciprocal_rank_fusion([[], []]) == []
    assert reciprocal_rank_fusion([[7], []]) == [(7, pytest.approx(1 / 61))]


@pytest.fixture
def vectors() -> np.ndarray:
    return normalised(np.random.default_rng(0).standard_normal((6, 16)))


def test_add_search_remove(vectors):
    index, first, second = TenantIndex(16), uuid.uuid4(), uuid.uuid4()
    index.add(first, np.array([10, 11, 12]), vectors[:3])
    index.add(second, np.array([20, 21, 22]), vectors[3:])
    assert len(index) == 6
    best = index.search(vectors[4], 2)
    assert best[0] == (21, pytest.approx(1.0))
    # Filtered: the best of the allowed document's chunks, by cosine.
    cosines = {10 + n: float(vectors[n] @ vectors[4]) for n in range(3)}
    assert index.search(vectors[4], 1, {first})[0][0] == max(cosines, key=cosines.__getitem__)
    assert {chunk for chunk, _ in index.search(vectors[4], 6, {first})} == {10, 11, 12}
    assert index.search(vectors[4], 3, set()) == []
    index.remove(second)
    assert len(index) == 3 and {chunk for chunk, _ in index.search(vectors[4], 6)} == {10, 11, 12}
    index.add(first, np.array([30]), vectors[5:])  # a document added again replaces its chunks
    assert len(index) == 1 and index.search(vectors[5], 1)[0][0] == 30


def test_save_and_load(vectors, tmp_path):
    index, document = TenantIndex(16, version=7), uuid.uuid4()
    index.add(document, np.array([1, 2, 3, 4, 5, 6]), vectors)
    path = tmp_path / "knowledge" / "tenant.faiss"
    index.save(path)
    loaded = TenantIndex.load(path)
    assert loaded is not None and loaded.version == 7 and len(loaded) == 6
    assert loaded.search(vectors[2], 1)[0][0] == 3
    loaded.remove(document)
    assert len(loaded) == 0
    assert TenantIndex.load(tmp_path / "missing.faiss") is None
    path.write_bytes(b"not an index")
    assert TenantIndex.load(path) is None
