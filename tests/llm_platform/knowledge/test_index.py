"""Reciprocal rank fusion's arithmetic, and a tenant's index in memory: add, remove and filtered search,
by meaning (FAISS) and by words (tantivy)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from llm_platform.knowledge.index import TenantIndex, normalised, reciprocal_rank_fusion
from llm_platform.knowledge.lexical import LexicalIndex, terms


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


COLLECTION, OTHER = uuid.uuid4(), uuid.uuid4()


def test_add_search_remove(vectors):
    index, first, second = TenantIndex(16, ann_min_vectors=0), uuid.uuid4(), uuid.uuid4()
    index.add(first, COLLECTION, np.array([10, 11, 12]), vectors[:3], ["a", "b", "c"])
    index.add(second, OTHER, np.array([20, 21, 22]), vectors[3:], ["d", "e", "f"])
    assert len(index) == 6
    best = index.search(vectors[4], 2)
    assert best[0] == (21, pytest.approx(1.0, abs=1e-3))  # stored as float16
    # Filtered: the best of the allowed document's chunks, by cosine.
    cosines = {10 + n: float(vectors[n] @ vectors[4]) for n in range(3)}
    assert index.search(vectors[4], 1, {first})[0][0] == max(cosines, key=cosines.__getitem__)
    assert {chunk for chunk, _ in index.search(vectors[4], 6, {first})} == {10, 11, 12}
    assert index.search(vectors[4], 3, set()) == []
    index.remove(second)
    assert len(index) == 3 and {chunk for chunk, _ in index.search(vectors[4], 6)} == {10, 11, 12}
    index.add(first, COLLECTION, np.array([30]), vectors[5:], ["g"])  # added again: replaces its chunks
    assert len(index) == 1 and index.search(vectors[5], 1)[0][0] == 30


def test_float16_ranks_as_float32_does():
    rng = np.random.default_rng(1)
    vectors = normalised(rng.standard_normal((2000, 64)))
    index = TenantIndex(64, ann_min_vectors=0)
    index.add(uuid.uuid4(), COLLECTION, np.arange(2000), vectors, [""] * 2000)
    for row in range(0, 2000, 100):
        query = normalised(vectors[row : row + 1] + 0.3 * rng.standard_normal((1, 64)))[0]
        exact = np.argsort(-(vectors @ query))[:5]
        assert [chunk for chunk, _ in index.search(query, 5)][:3] == exact[:3].tolist()


def test_allowed_resolves_a_collection_filter_in_memory(vectors):
    index, first, second = TenantIndex(16, ann_min_vectors=0), uuid.uuid4(), uuid.uuid4()
    index.add(first, COLLECTION, np.array([1]), vectors[:1], ["a"])
    index.add(second, OTHER, np.array([2]), vectors[1:2], ["b"])
    assert index.allowed(None, None) is None
    assert index.allowed([COLLECTION, OTHER], None) is None  # every document: no filter to apply
    assert index.allowed([COLLECTION], None) == {first}
    assert index.allowed([uuid.uuid4()], None) == set()
    assert index.allowed(None, [second, uuid.uuid4()]) == {second}  # a metadata filter's documents
    assert index.allowed([COLLECTION], [second]) == set()
    index.remove(second)  # its collection is left empty: nothing of it is allowed
    assert index.allowed([OTHER], None) == set()
    assert index.allowed([COLLECTION], None) is None
    index.add(second, OTHER, np.array([3]), vectors[2:3], ["c"])
    assert index.allowed([OTHER], None) == {second}


def test_lexical_ranks_rare_words_higher_and_forgets_removed_documents():
    index, common, rare = LexicalIndex(), uuid.uuid4(), uuid.uuid4()
    texts = [f"the pump report number {n} covers routine maintenance" for n in range(20)]
    index.add(common, range(20), texts)
    index.add(rare, [100], ["Pumping valve RV-7731 replaced during maintenance"])
    assert index.search(terms("pump"), 5) == []  # not searchable before a commit
    index.commit()
    # Stemmed (pumping ~ pump), and the rare term outweighs words every chunk has.
    hits = index.search(terms("maintenance of valve rv 7731"), 3)
    assert hits[0][0] == 100 and len(hits) == 3
    assert {chunk for chunk, _ in index.search(terms("pumps"), 50)} == set(range(20)) | {100}
    assert [chunk for chunk, _ in index.search(terms("maintenance"), 50, {rare})] == [100]
    assert index.search(terms("maintenance"), 50, set()) == []
    # Query syntax is not syntax here: quotes, operators and field names are just words or nothing.
    assert index.search(terms('text:pump OR "valve" AND NOT -rv* (x)'), 5)[0][0] == 100
    index.remove(rare)
    index.commit()
    assert 100 not in {chunk for chunk, _ in index.search(terms("valve maintenance"), 50)}


def _clustered(count: int, dim: int, seed: int) -> np.ndarray:
    """Vectors around 50 centres, as a model's embeddings of documents on a few topics are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    return normalised(centres[rng.integers(0, 50, count)] + 0.6 * rng.standard_normal((count, dim)))


def test_a_large_index_becomes_an_inverted_file_that_still_finds_what_a_scan_finds():
    vectors, dim = _clustered(8100, 32, seed=3), 32
    index = TenantIndex(dim, ann_min_vectors=2000)
    documents = [uuid.uuid4() for _ in range(81)]
    for n, document in enumerate(documents[:30]):
        rows = slice(n * 100, (n + 1) * 100)
        index.add(document, COLLECTION, np.arange(rows.start, rows.stop), vectors[rows], [""] * 100)
        if n % 10 == 9:
            index.commit()
    assert index.inverted and index.trained_on == 2000  # trained when it crossed the threshold
    held = vectors[:3000]
    rng = np.random.default_rng(4)
    found = 0
    for row in range(0, 3000, 30):
        query = normalised(vectors[row : row + 1] + 0.2 * rng.standard_normal((1, dim)))[0]
        best = [chunk for chunk, _ in index.search(query, 5)]
        found += best[0] == int(np.argmax(held @ query))
    assert found >= 90  # of 100 queries: the scan's best, probing a third of the lists
    # A narrow filter (one document of 30) is searched exactly: the scan's order over its chunks.
    query = vectors[1234]
    exact = np.argsort(-(vectors[500:600] @ query))[:5] + 500
    assert [chunk for chunk, _ in index.search(query, 5, {documents[5]})] == exact.tolist()
    # Removed chunks are gone; the scores are cosines, as the flat index's are.
    index.remove(documents[12])
    index.commit()
    assert index.search(vectors[1234], 1)[0][0] != 1234
    assert index.search(vectors[2345], 1)[0] == (2345, pytest.approx(1.0, abs=1e-3))
    # Grown fourfold since training: trained again, on all of it.
    for n, document in enumerate(documents[30:], start=30):
        rows = slice(n * 100, (n + 1) * 100)
        index.add(document, COLLECTION, np.arange(rows.start, rows.stop), vectors[rows], [""] * 100)
    index.commit()
    assert index.trained_on == len(index) == 8000
    # Shrunk below the threshold and fourfold: a scan again, with the vectors it had.
    for document in documents[1:]:
        index.remove(document)
    index.commit()
    assert not index.inverted and len(index) == 100
    assert index.search(vectors[42], 1)[0] == (42, pytest.approx(1.0, abs=1e-3))


def test_an_inverted_file_still_finds_k_when_the_lists_probed_hold_fewer():
    vectors, index = _clustered(2000, 16, seed=7), TenantIndex(16, ann_min_vectors=1000)
    document = uuid.uuid4()
    index.add(document, COLLECTION, np.arange(2000), vectors, [""] * 2000)
    index.commit()
    assert index.inverted
    # A third of the lists holds about 700 vectors: asked for 1500, every list is searched.
    found = index.search(vectors[0], 1500)
    assert len(found) == 1500 and found[0][0] == 0
    exact = np.sort(vectors @ vectors[0])[::-1][:1500]
    assert np.allclose([score for _, score in found], exact, atol=2e-3)


def test_an_index_set_never_to_invert_stays_a_scan():
    vectors = _clustered(3000, 16, seed=5)
    index = TenantIndex(16, ann_min_vectors=0)
    index.add(uuid.uuid4(), COLLECTION, np.arange(3000), vectors, [""] * 3000)
    index.commit()
    assert not index.inverted


def test_an_inverted_file_emptied_at_once_is_a_scan_again():
    vectors, index = _clustered(2000, 16, seed=6), TenantIndex(16, ann_min_vectors=1000)
    first, second = uuid.uuid4(), uuid.uuid4()
    index.add(first, COLLECTION, np.arange(1000), vectors[:1000], [""] * 1000)
    index.add(second, COLLECTION, np.arange(1000, 2000), vectors[1000:], [""] * 1000)
    index.commit()
    assert index.inverted
    index.remove(first)
    index.remove(second)
    index.commit()
    assert not index.inverted and len(index) == 0 and index.search(vectors[0], 1) == []


def test_a_threshold_below_a_thousand_waits_for_a_thousand_vectors():
    vectors, index = _clustered(1000, 16, seed=8), TenantIndex(16, ann_min_vectors=4)
    index.add(uuid.uuid4(), COLLECTION, np.arange(999), vectors[:999], [""] * 999)
    index.commit()
    assert not index.inverted  # too few to train lists worth probing
    index.add(uuid.uuid4(), COLLECTION, np.array([999]), vectors[999:], [""])
    index.commit()
    assert index.inverted and index.dense.nlist == 25
