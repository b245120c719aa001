"""The embedded platform (SQLite): full-text search through FTS5 (kept by triggers), filters, deletes,
and hybrid search, where the code differs from Postgres."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llm_platform.app import create_app
from llm_platform.core.migrate import upgrade_to_head
from llm_platform.core.settings import Settings
from tests.conftest import PlatformHelper
from tests.llm_platform.knowledge.conftest import ingest, install_embedder, search
from tests.workers import WORKER_SECRET


@pytest.fixture
def embedded(tmp_path) -> Iterator[PlatformHelper]:  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path,
        worker_secret=WORKER_SECRET,
        jwt_secret="test-secret-" + "x" * 40,
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
        serve_workers=False,
    )
    upgrade_to_head(settings.resolved_database_url)
    with TestClient(create_app(settings)) as client:
        install_embedder(client)
        yield PlatformHelper(client, settings)


def test_lexical_and_hybrid_search_on_sqlite(embedded):
    client, tenant = embedded.client, embedded.create_tenant("solo")
    headers = tenant.admin_headers
    client.post(f"/{tenant.slug}/kb/collections", json={"name": "parts"}, headers=headers)
    valve = ingest(
        client, tenant.slug, headers, "The relief valve RV-7731 opens at 12 bar.", collection="parts"
    )
    pump = ingest(
        client, tenant.slug, headers, "Pumps are running quietly in the basement.", metadata={"floor": -1}
    )
    other = embedded.create_tenant("other")
    ingest(client, other.slug, other.admin_headers, "Pump RV-7731 belongs to another tenant.")

    # Porter stemming ("pumping" finds "Pumps"), ranked by bm25; only this tenant's chunks.
    found = search(client, tenant.slug, headers, "pumping running", mode="lexical")
    assert [hit["document_id"] for hit in found] == [pump["id"]]
    found = search(
        client, tenant.slug, headers, 'RV-7731 "quoted" OR NOT *', mode="lexical"
    )  # FTS syntax inert
    assert [hit["document_id"] for hit in found] == [valve["id"]]
    assert search(client, tenant.slug, headers, "RV-7731", mode="lexical", collections=["default"]) == []
    assert search(client, tenant.slug, headers, "pumps", filter={"floor": -1})[0]["document_id"] == pump["id"]
    assert search(client, tenant.slug, headers, "relief valve", top_k=1)[0]["document_id"] == valve["id"]

    assert client.delete(f"/{tenant.slug}/kb/documents/{valve['id']}", headers=headers).status_code == 204
    for mode in ("lexical", "hybrid", "dense"):
        assert valve["id"] not in {
            h["document_id"] for h in search(client, tenant.slug, headers, "relief valve", mode=mode)
        }
