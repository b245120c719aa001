"""Several API processes answer from one knowledge base: a change through one is searchable through
another within a second; a process started afresh builds its indexes from the database."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from llm_platform.app import create_app
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


def test_a_restarted_process_builds_its_indexes_from_the_database(platform, tenant_a, settings, embedder):
    slug, headers = tenant_a.slug, tenant_a.admin_headers
    document = ingest(platform.client, slug, headers, "glacier survey with ice cores")
    search(platform.client, slug, headers, "glacier")
    with TestClient(create_app(settings)) as restarted:
        install_embedder(restarted, embedder)
        for mode in ("dense", "lexical", "hybrid"):
            found = search(restarted, slug, headers, "glacier ice", mode=mode)
            assert found[0]["document_id"] == document["id"], mode
