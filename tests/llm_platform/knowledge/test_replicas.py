"""Several API processes answer from one knowledge base: a change through one is searchable through
another within a second; a process restarted reads its saved index instead of rebuilding it."""

from __future__ import annotations

import time
import uuid

from fastapi.testclient import TestClient

from llm_platform.app import create_app
from llm_platform.knowledge import search as search_module
from tests.llm_platform.knowledge.conftest import ingest, install_embedder, search


def _searchable_within(
    client, slug, headers, query, document_id, present: bool, within_s: float = 1.0
) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while True:
        found = {hit["document_id"] for hit in search(client, slug, headers, query, mode="dense", top_k=5)}
        if (document_id in found) == present:
            return time.monotonic() - started
        assert time.monotonic() - started < within_s, f"not {'found' if present else 'gone'} in {within_s}s"
        time.sleep(0.05)


def test_a_change_through_one_replica_is_searchable_through_another(
    platform, tenant_a, settings, tmp_path, embedder
):
    slug, headers = tenant_a.slug, tenant_a.admin_headers
    first = platform.client
    ingest(first, slug, headers, "warm up so that both replicas hold an index")
    with TestClient(create_app(settings.model_copy(update={"data_dir": tmp_path / "replica-b"}))) as second:
        install_embedder(second, embedder)
        search(second, slug, headers, "warm up")  # the second replica builds its index now
        document = ingest(first, slug, headers, "zeppelin hangar maintenance schedule")
        _searchable_within(second, slug, headers, "zeppelin hangar", document["id"], present=True)
        assert first.delete(f"/{slug}/kb/documents/{document['id']}", headers=headers).status_code == 204
        _searchable_within(second, slug, headers, "zeppelin hangar", document["id"], present=False)
        other = ingest(second, slug, headers, "submarine periscope calibration notes")
        _searchable_within(first, slug, headers, "submarine periscope", other["id"], present=True)


def test_a_restarted_process_reads_its_saved_index(platform, tenant_a, settings, embedder, monkeypatch):
    slug, headers = tenant_a.slug, tenant_a.admin_headers
    document = ingest(platform.client, slug, headers, "glacier survey with ice cores")
    search(platform.client, slug, headers, "glacier")
    platform.client.portal.call(platform.client.app.state.platform.knowledge.save, uuid.UUID(tenant_a.id))
    assert (settings.resolved_knowledge_index_dir / f"{tenant_a.id}.faiss").is_file()

    def no_rebuild(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the saved index should have been read, not rebuilt")

    monkeypatch.setattr(search_module, "_catch_up", no_rebuild)
    with TestClient(create_app(settings)) as restarted:
        install_embedder(restarted, embedder)
        found = search(restarted, slug, headers, "glacier ice", mode="dense")
        assert found[0]["document_id"] == document["id"]
