"""Tenants' indexes kept between processes (store.py): saved when a process stops, loaded by the next
one and brought up to date from the database; never a snapshot whose files disagree; each tenant's own."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from llm_platform.app import create_app
from llm_platform.knowledge.index import TenantIndex
from llm_platform.knowledge.store import STATE, IndexStore
from tests.llm_platform.knowledge.conftest import ingest, install_embedder, search

LOADED = "loaded from disk"


def _homes(root: Path, tenant_id: str) -> list[Path]:
    tenant_dir = root / tenant_id
    return sorted(p for p in tenant_dir.iterdir() if p.is_dir()) if tenant_dir.is_dir() else []


def test_a_process_started_again_loads_the_saved_index_and_catches_up(
    platform, tenant_a, tenant_b, settings, tmp_path, embedder, capsys
):
    slug, headers = tenant_a.slug, tenant_a.admin_headers
    kept = settings.model_copy(update={"data_dir": tmp_path / "kept"})
    root = kept.resolved_knowledge_index_dir
    stays = ingest(platform.client, slug, headers, "glacier survey with ice cores")
    goes = ingest(platform.client, slug, headers, "volcano ash sampling protocol")
    theirs = ingest(platform.client, tenant_b.slug, tenant_b.admin_headers, "glacier melt of tenant b")
    with TestClient(create_app(kept)) as first:
        install_embedder(first, embedder)
        assert search(first, slug, headers, "glacier")[0]["document_id"] == stays["id"]
        search(first, tenant_b.slug, tenant_b.admin_headers, "glacier")
    # Stopped: each tenant's index saved in a home of its own.
    for tenant in (tenant_a, tenant_b):
        (home,) = _homes(root, tenant.id)
        assert (home / STATE).is_file()
    # Meanwhile another process deletes one document and adds another.
    assert platform.client.delete(f"/{slug}/kb/documents/{goes['id']}", headers=headers).status_code == 204
    new = ingest(platform.client, slug, headers, "volcano crater lake chemistry")
    capsys.readouterr()
    with TestClient(create_app(kept)) as again:
        install_embedder(again, embedder)
        for mode in ("dense", "lexical", "hybrid"):
            found = [hit["document_id"] for hit in search(again, slug, headers, "volcano glacier", mode=mode)]
            assert goes["id"] not in found, mode
            assert {stays["id"], new["id"]} <= set(found), mode
            assert theirs["id"] not in found, mode
        b_found = search(again, tenant_b.slug, tenant_b.admin_headers, "glacier volcano", top_k=10)
        assert [hit["document_id"] for hit in b_found] == [theirs["id"]]
    # Both from their saved snapshots (the log line says so), not rebuilt from the database.
    assert capsys.readouterr().err.count(LOADED) == 2


def _index(store: IndexStore, tenant_id: uuid.UUID, ann_min: int = 0) -> TenantIndex:
    home = store.new_home(tenant_id)
    assert home.load(ann_min) is None  # nothing saved in it yet
    return TenantIndex(8, ann_min, version=1, home=home)


def _add(index: TenantIndex, document: uuid.UUID, start: int, count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, index.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(start, start + count, dtype=np.int64)
    index.add(document, uuid.UUID(int=1), ids, vectors, [f"word{i} common" for i in ids])
    index.commit()
    return vectors


def test_a_home_changed_since_its_save_is_never_loaded(tmp_path):
    """A change deletes the state first: a process that dies before saving again leaves a home that the
    next claim deletes, not one whose files disagree with its state."""
    store, tenant = IndexStore(tmp_path), uuid.uuid4()
    index = _index(store, tenant)
    _add(index, uuid.uuid4(), 0, 5)
    index.home.save(index)  # type: ignore[union-attr]
    assert (index.home.path / STATE).is_file()  # type: ignore[union-attr]
    _add(index, uuid.uuid4(), 5, 5, seed=1)
    assert not (index.home.path / STATE).exists()  # type: ignore[union-attr]
    index.home.release()  # type: ignore[union-attr]  # the process died here
    assert store.claim_saved(tenant) is None
    assert _homes(tmp_path, str(tenant)) == []  # the stale home is gone


def test_a_saved_index_searches_as_before_and_changes_after_loading(tmp_path):
    """Flat and inverted (trained) indexes come back with their vectors, words and documents."""
    for ann_min, count in ((0, 40), (1000, 1200)):
        store, tenant = IndexStore(tmp_path / str(ann_min)), uuid.uuid4()
        index = _index(store, tenant, ann_min)
        first, second = uuid.uuid4(), uuid.uuid4()
        vectors = _add(index, first, 0, count)
        _add(index, second, count, 3, seed=2)
        assert index.inverted == bool(ann_min)
        expected = index.search(vectors[7], 5)
        index.home.save(index)  # type: ignore[union-attr]
        index.home.release()  # type: ignore[union-attr]
        home = store.claim_saved(tenant)
        assert home is not None
        loaded = home.load(ann_min)
        assert loaded is not None and loaded.version == 1 and len(loaded) == count + 3
        assert loaded.inverted == bool(ann_min)
        assert loaded.search(vectors[7], 5) == expected
        assert loaded.lexical.search(["word3"], 3)[0][0] == 3
        assert set(loaded.documents) == {first, second}
        loaded.remove(second)
        loaded.commit()
        assert not (home.path / STATE).exists()
        assert len(loaded) == count and loaded.lexical.search(["word" + str(count)], 3) == []


def test_homes_in_use_are_left_alone_and_gone_tenants_swept(tmp_path):
    store, tenant, gone = IndexStore(tmp_path), uuid.uuid4(), uuid.uuid4()
    held = _index(store, tenant)
    _add(held, uuid.uuid4(), 0, 3)
    held.home.save(held)  # type: ignore[union-attr]
    assert store.claim_saved(tenant) is None  # held by "another process": left alone
    replicas = [_index(store, gone), _index(store, gone)]  # two processes, both saved at their stop
    for index in replicas:
        _add(index, uuid.uuid4(), 0, 3)
        index.home.save(index)  # type: ignore[union-attr]
    for index in replicas:
        index.home.release()  # type: ignore[union-attr]
    assert len(_homes(tmp_path, str(gone))) == 2
    # Of two snapshots, one is claimed and the other deleted.
    home = store.claim_saved(gone)
    assert home is not None and _homes(tmp_path, str(gone)) == [home.path]
    home.release()
    assert store.sweep({tenant}) == 1
    assert not (tmp_path / str(gone)).exists()
    assert _homes(tmp_path, str(tenant)) == [held.home.path]  # type: ignore[union-attr]


def test_where_no_index_can_be_kept_indexes_are_held_in_memory(
    tenant_a, settings, tmp_path, embedder, capsys
):
    """Kept indexes are a cache: a directory that cannot be made costs restarts a rebuild, nothing else."""
    slug, headers = tenant_a.slug, tenant_a.admin_headers
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory", encoding="utf-8")
    unwritable = settings.model_copy(update={"knowledge_index_dir": blocked / "knowledge"})
    with TestClient(create_app(unwritable)) as app:
        install_embedder(app, embedder)
        document = ingest(app, slug, headers, "lighthouse lens cleaning rota")
        for mode in ("dense", "lexical", "hybrid"):
            assert (
                search(app, slug, headers, "lighthouse lens", mode=mode)[0]["document_id"] == document["id"]
            )
    assert "held in memory only" in capsys.readouterr().err
