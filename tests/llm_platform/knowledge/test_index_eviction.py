"""The indexes an API process holds are bounded by their chunks in all
(LLMP_KNOWLEDGE_MAX_INDEXED_CHUNKS): searching another tenant past the limit saves and drops the least
recently searched tenant's index, whose next search loads it again and still answers right; a tenant
alone over the limit is served and kept on its own."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.llm_platform.knowledge.conftest import ingest, search

MAX_CHUNKS = 3
TEXTS = {
    "alpha": ["The lighthouse lens is a Fresnel lens.", "The keeper's cottage has a red roof."],
    "bravo": ["Our bakery sells sourdough bread.", "Cinnamon buns are baked every morning."],
}


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    return settings.model_copy(update={"knowledge_max_indexed_chunks": MAX_CHUNKS})


def _held(platform) -> dict[uuid.UUID, int]:  # type: ignore[no-untyped-def]
    return platform.client.app.state.platform.knowledge.indexed_chunks()


def test_the_least_recently_searched_index_is_dropped_and_loaded_again(
    platform, tenant_a, tenant_b, embedder, caplog
):
    client = platform.client
    documents = {}
    for tenant, texts in ((tenant_a, TEXTS["alpha"]), (tenant_b, TEXTS["bravo"])):
        documents[tenant.slug] = [ingest(client, tenant.slug, tenant.admin_headers, t)["id"] for t in texts]
    a, b = uuid.UUID(tenant_a.id), uuid.UUID(tenant_b.id)

    assert (
        search(client, tenant_a.slug, tenant_a.admin_headers, "Fresnel lens")[0]["document_id"]
        == (documents[tenant_a.slug][0])
    )
    assert _held(platform) == {a: 2}
    found_b = search(client, tenant_b.slug, tenant_b.admin_headers, "sourdough bread")
    assert found_b[0]["document_id"] == documents[tenant_b.slug][0]
    assert _held(platform) == {b: 2}  # 4 chunks together: over 3, so A's index went
    caplog.set_level(logging.INFO, logger="llm_platform.knowledge.search")
    caplog.clear()
    found_a = search(client, tenant_a.slug, tenant_a.admin_headers, "red roof cottage")
    # Saved as it was dropped, so loaded from disk rather than rebuilt from the database.
    assert f"knowledge index of tenant {a} loaded from disk: 2 chunks" in caplog.messages
    assert found_a[0]["document_id"] == documents[tenant_a.slug][1]
    assert {hit["document_id"] for hit in found_a} <= set(documents[tenant_a.slug])  # A's own only
    assert _held(platform) == {a: 2}


def test_a_tenant_alone_over_the_limit_is_still_served(platform, tenant_a, embedder):
    client, slug, headers = platform.client, tenant_a.slug, tenant_a.admin_headers
    ids = [ingest(client, slug, headers, text)["id"] for text in TEXTS["alpha"] + TEXTS["bravo"]]
    assert search(client, slug, headers, "cinnamon buns")[0]["document_id"] == ids[3]
    assert _held(platform) == {uuid.UUID(tenant_a.id): 4}
    assert search(client, slug, headers, "Fresnel lens")[0]["document_id"] == ids[0]
