"""Tenant A never lists, reads, searches or deletes tenant B's documents or collections, by any route:
another tenant's paths answer 404 as missing ones do, and B's ids through A's paths are not found."""

from __future__ import annotations

import pytest

from tests.llm_platform.knowledge.conftest import ingest, search
from tests.responses import assert_error, bearer

SECRET = "Bravo's secret recipe uses saffron and cardamom."


@pytest.fixture
def bravo_document(platform, tenant_b, embedder):  # type: ignore[no-untyped-def]
    platform.client.post(
        f"/{tenant_b.slug}/kb/collections", json={"name": "private"}, headers=tenant_b.admin_headers
    )
    return ingest(platform.client, tenant_b.slug, tenant_b.admin_headers, SECRET, collection="private")


@pytest.fixture
def alpha(platform, tenant_a):  # type: ignore[no-untyped-def]
    """Tenant A's admin, and an API key of A that may write and read."""
    return tenant_a.admin_headers, bearer(
        platform.create_key(tenant_a, scopes=["inference", "kb:write"])["key"]
    )


def test_list(platform, tenant_a, tenant_b, alpha, bravo_document):
    for headers in alpha:
        assert_error(platform.client.get(f"/{tenant_b.slug}/kb/documents", headers=headers), 404)
        assert_error(platform.client.get(f"/{tenant_b.slug}/kb/collections", headers=headers), 404)
        own = platform.client.get(f"/{tenant_a.slug}/kb/documents", headers=headers).json()
        assert own["data"] == []
        collections = platform.client.get(f"/{tenant_a.slug}/kb/collections", headers=headers).json()
        assert [c["name"] for c in collections] == ["default"]


def test_read(platform, tenant_a, tenant_b, alpha, bravo_document):
    for headers in alpha:
        for slug in (tenant_a.slug, tenant_b.slug):
            response = platform.client.get(f"/{slug}/kb/documents/{bravo_document['id']}", headers=headers)
            assert_error(response, 404)


def test_search(platform, tenant_a, tenant_b, alpha, bravo_document, embedder):
    ingest(platform.client, tenant_a.slug, tenant_a.admin_headers, "Alpha keeps spices too: pepper.")
    for headers in alpha:
        assert_error(
            platform.client.post(f"/{tenant_b.slug}/kb/search", json={"query": "saffron"}, headers=headers),
            404,
        )
        for mode in ("hybrid", "dense", "lexical"):
            found = search(
                platform.client, tenant_a.slug, headers, "saffron cardamom recipe", mode=mode, top_k=10
            )
            assert bravo_document["id"] not in {hit["document_id"] for hit in found}
            found = search(
                platform.client, tenant_a.slug, headers, "saffron", mode=mode, collections=["private"]
            )
            assert found == []


def test_delete(platform, tenant_a, tenant_b, alpha, bravo_document):
    for headers in alpha:
        for slug in (tenant_a.slug, tenant_b.slug):
            response = platform.client.delete(f"/{slug}/kb/documents/{bravo_document['id']}", headers=headers)
            assert_error(response, 404)
        assert_error(platform.client.delete(f"/{tenant_b.slug}/kb/collections/private", headers=headers), 404)
        assert_error(platform.client.delete(f"/{tenant_a.slug}/kb/collections/private", headers=headers), 404)
    still = platform.client.get(
        f"/{tenant_b.slug}/kb/documents/{bravo_document['id']}", headers=tenant_b.admin_headers
    )
    assert still.status_code == 200 and still.json()["status"] == "ready"


def test_write(platform, tenant_b, alpha, bravo_document):
    for headers in alpha:
        response = platform.client.post(
            f"/{tenant_b.slug}/kb/documents", json={"text": "intruder"}, headers=headers
        )
        assert_error(response, 404)
        response = platform.client.post(
            f"/{tenant_b.slug}/kb/collections", json={"name": "x"}, headers=headers
        )
        assert_error(response, 404)
    listed = platform.client.get(f"/{tenant_b.slug}/kb/documents", headers=tenant_b.admin_headers).json()
    assert [d["id"] for d in listed["data"]] == [bravo_document["id"]]
