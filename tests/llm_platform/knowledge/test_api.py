"""The knowledge base through its API: documents sent as JSON become ready and searchable in each mode,
listed, read and deleted; collections; duplicates; who may write; audit rows of writes."""

from __future__ import annotations

from sqlalchemy import text

from llm_platform.knowledge.search import RRF_K
from tests.conftest import register_model
from tests.llm_platform.knowledge.conftest import ENCODER, add_text, ingest, search, wait_for
from tests.responses import assert_error, bearer
from tests.workers import wait_registered

LIGHTHOUSE = (
    "The Varnholm lighthouse was built in 1871 on a granite skerry.\n\n"
    "Its lens is a first-order Fresnel lens, part number FX-2291, polished by hand."
)
UNSERVED_ENCODER = "kb-a-unserved-encoder"  # an enabled embedding model no worker serves
BAKERY = "Our bakery sells sourdough bread, rye loaves and cinnamon buns every morning."
GARDEN = "The botanical garden keeps orchids, ferns and a greenhouse of cacti."


def test_a_document_becomes_ready_and_each_mode_finds_it(platform, tenant_a, embedder):
    client, headers = platform.client, tenant_a.admin_headers
    lighthouse = ingest(client, tenant_a.slug, headers, LIGHTHOUSE, title="Lighthouse", metadata={"k": 1})
    ingest(client, tenant_a.slug, headers, BAKERY)
    ingest(client, tenant_a.slug, headers, GARDEN)
    assert lighthouse["chunks"] >= 1 and lighthouse["collection"] == "default"
    assert lighthouse["bytes"] == len(LIGHTHOUSE.encode()) and lighthouse["error"] is None
    for mode in ("hybrid", "dense", "lexical"):
        found = search(client, tenant_a.slug, headers, "Fresnel lens part number FX-2291", mode=mode, top_k=2)
        assert found[0]["document_id"] == lighthouse["id"], mode
        assert found[0]["title"] == "Lighthouse" and found[0]["collection"] == "default"
        assert set(found[0]) == {"document_id", "title", "collection", "chunk_index", "text", "score"}
    hybrid = search(client, tenant_a.slug, headers, "sourdough bread", top_k=3)
    # Reciprocal rank fusion: first in both lists scores 2 / (RRF_K + 1).
    assert abs(hybrid[0]["score"] - 2 / (RRF_K + 1)) < 1e-9
    assert len(search(client, tenant_a.slug, headers, "orchids", top_k=1)) == 1


def test_filters_apply_before_top_k(platform, tenant_a, embedder):
    client, headers = platform.client, tenant_a.admin_headers
    assert (
        client.post(f"/{tenant_a.slug}/kb/collections", json={"name": "manuals"}, headers=headers).status_code
        == 201
    )
    ingest(client, tenant_a.slug, headers, "bread " * 5 + "alpha")
    manual = ingest(
        client, tenant_a.slug, headers, "bread recipe beta", collection="manuals", metadata={"lang": "en"}
    )
    ingest(
        client, tenant_a.slug, headers, "bread recipe gamma", collection="manuals", metadata={"lang": "de"}
    )
    for mode in ("hybrid", "dense", "lexical"):
        found = search(
            client,
            tenant_a.slug,
            headers,
            "bread",
            mode=mode,
            top_k=1,
            collections=["manuals"],
            filter={"lang": "en"},
        )
        assert [hit["document_id"] for hit in found] == [manual["id"]], mode
    assert search(client, tenant_a.slug, headers, "bread", collections=["nothing"]) == []


def test_list_get_delete_and_pagination(platform, tenant_a, embedder):
    client, headers, slug = platform.client, tenant_a.admin_headers, tenant_a.slug
    ids = [ingest(client, slug, headers, f"document number {n} about topic {n}")["id"] for n in range(5)]
    page = client.get(f"/{slug}/kb/documents", params={"limit": 2}, headers=headers).json()
    seen = [d["id"] for d in page["data"]]
    while page["next_cursor"]:
        page = client.get(
            f"/{slug}/kb/documents", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers
        ).json()
        seen += [d["id"] for d in page["data"]]
    assert seen == list(reversed(ids))  # newest first, each once
    assert (
        len(client.get(f"/{slug}/kb/documents", params={"status": "ready"}, headers=headers).json()["data"])
        == 5
    )
    assert (
        client.get(f"/{slug}/kb/documents", params={"status": "failed"}, headers=headers).json()["data"] == []
    )
    assert_error(
        client.get(f"/{slug}/kb/documents", params={"cursor": "garbage"}, headers=headers),
        400,
        "invalid_cursor",
    )

    assert search(client, slug, headers, "topic 3", mode="lexical", top_k=1)[0]["document_id"] == ids[3]
    assert client.delete(f"/{slug}/kb/documents/{ids[3]}", headers=headers).status_code == 204
    assert_error(client.get(f"/{slug}/kb/documents/{ids[3]}", headers=headers), 404, "document_not_found")
    for mode in ("hybrid", "dense", "lexical"):
        assert ids[3] not in {
            hit["document_id"]
            for hit in search(client, slug, headers, "number 3 topic 3", mode=mode, top_k=10)
        }


def test_collections(platform, tenant_a, embedder):
    client, headers, slug = platform.client, tenant_a.admin_headers, tenant_a.slug
    assert [c["name"] for c in client.get(f"/{slug}/kb/collections", headers=headers).json()] == ["default"]
    created = client.post(f"/{slug}/kb/collections", json={"name": "legal"}, headers=headers)
    assert created.status_code == 201 and created.json()["documents"] == 0
    assert_error(
        client.post(f"/{slug}/kb/collections", json={"name": "legal"}, headers=headers),
        409,
        "collection_exists",
    )
    assert_error(client.post(f"/{slug}/kb/collections", json={"name": "../etc"}, headers=headers), 422)
    document = ingest(client, slug, headers, "contract clause about liability", collection="legal")
    listed = {
        c["name"]: c["documents"] for c in client.get(f"/{slug}/kb/collections", headers=headers).json()
    }
    assert listed == {"default": 0, "legal": 1}
    assert_error(
        client.post(f"/{slug}/kb/documents", json={"text": "x", "collection": "nope"}, headers=headers),
        404,
        "collection_not_found",
    )
    assert client.delete(f"/{slug}/kb/collections/legal", headers=headers).status_code == 204
    assert client.get(f"/{slug}/kb/documents/{document['id']}", headers=headers).status_code == 404
    assert search(client, slug, headers, "liability clause") == []
    assert_error(client.delete(f"/{slug}/kb/collections/legal", headers=headers), 404, "collection_not_found")


def test_default_always_exists(platform, tenant_a, tenant_b, embedder):
    """`default` is there for a tenant that never touched its knowledge base: it is listed, it cannot
    be created again, and deleting it empties it (its documents and their vectors go) and keeps it."""
    client = platform.client
    fresh, headers_b = tenant_b.slug, tenant_b.admin_headers
    assert_error(
        client.post(f"/{fresh}/kb/collections", json={"name": "default"}, headers=headers_b),
        409,
        "collection_exists",
    )
    assert client.delete(f"/{fresh}/kb/collections/default", headers=headers_b).status_code == 204
    assert [c["name"] for c in client.get(f"/{fresh}/kb/collections", headers=headers_b).json()] == [
        "default"
    ]

    slug, headers = tenant_a.slug, tenant_a.admin_headers
    created_at = client.get(f"/{slug}/kb/collections", headers=headers).json()[0]["created_at"]
    client.post(f"/{slug}/kb/collections", json={"name": "legal"}, headers=headers)
    in_default = ingest(client, slug, headers, BAKERY)
    in_legal = ingest(client, slug, headers, GARDEN, collection="legal")
    assert client.delete(f"/{slug}/kb/collections/default", headers=headers).status_code == 204
    listed = client.get(f"/{slug}/kb/collections", headers=headers).json()
    assert [(c["name"], c["documents"]) for c in listed] == [("default", 0), ("legal", 1)]
    assert listed[0]["created_at"] == created_at  # the same collection, emptied
    assert client.get(f"/{slug}/kb/documents/{in_default['id']}", headers=headers).status_code == 404
    assert search(client, slug, headers, "sourdough bread", mode="lexical") == []
    assert [hit["document_id"] for hit in search(client, slug, headers, "orchids", mode="lexical")] == [
        in_legal["id"]
    ]
    again = ingest(client, slug, headers, BAKERY)  # the emptied default takes documents as before
    assert search(client, slug, headers, "sourdough bread", mode="lexical")[0]["document_id"] == again["id"]


def test_identical_content_is_not_indexed_twice(platform, tenant_a, embedder):
    client, headers, slug = platform.client, tenant_a.admin_headers, tenant_a.slug
    first = ingest(client, slug, headers, BAKERY)
    calls = len(embedder.calls)
    again = add_text(client, slug, headers, BAKERY, title="another title")
    assert again == {"id": first["id"], "status": "ready"}
    assert len(embedder.calls) == calls
    assert len(client.get(f"/{slug}/kb/documents", headers=headers).json()["data"]) == 1
    client.post(f"/{slug}/kb/collections", json={"name": "other"}, headers=headers)
    assert ingest(client, slug, headers, BAKERY, collection="other")["id"] != first["id"]


def test_who_may_write_and_read(platform, tenant_a, embedder):
    client, slug = platform.client, tenant_a.slug
    inference = bearer(platform.create_key(tenant_a)["key"])
    writer = bearer(platform.create_key(tenant_a, scopes=["kb:write"])["key"])
    platform.create_user(slug, "member@alpha.example.com", headers=tenant_a.admin_headers)
    member = bearer(platform.login("member@alpha.example.com", tenant=slug)["access_token"])
    for refused in (inference, member):
        assert_error(client.post(f"/{slug}/kb/documents", json={"text": "x"}, headers=refused), 403)
        assert_error(client.post(f"/{slug}/kb/collections", json={"name": "c"}, headers=refused), 403)
    document = ingest(client, slug, writer, GARDEN)
    for reader in (inference, member, writer):
        assert client.get(f"/{slug}/kb/documents/{document['id']}", headers=reader).status_code == 200
        assert search(client, slug, reader, "orchids")[0]["document_id"] == document["id"]
    assert_error(client.delete(f"/{slug}/kb/documents/{document['id']}", headers=member), 403)
    assert client.delete(f"/{slug}/kb/documents/{document['id']}", headers=writer).status_code == 204
    admin_only = bearer(platform.create_key(tenant_a, scopes=["admin"])["key"])
    assert (
        client.post(f"/{slug}/kb/documents", json={"text": "by admin key"}, headers=admin_only).status_code
        == 202
    )
    kept = ingest(client, slug, writer, BAKERY)
    # Search takes its tenant from the credential (no query): a platform admin still searches any tenant.
    for reader in (admin_only, platform.admin_headers):
        assert search(client, slug, reader, "sourdough bread")[0]["document_id"] == kept["id"]
    assert_error(client.post("/no-such-tenant/kb/search", json={"query": "x"}, headers=inference), 404)
    assert_error(
        client.post("/no-such-tenant/kb/search", json={"query": "x"}, headers=platform.admin_headers), 404
    )


def test_writes_and_deletes_are_audited(platform, tenant_a, embedder):
    client, headers, slug = platform.client, tenant_a.admin_headers, tenant_a.slug
    document = ingest(client, slug, headers, BAKERY)
    client.post(f"/{slug}/kb/collections", json={"name": "audited"}, headers=headers)
    client.delete(f"/{slug}/kb/documents/{document['id']}", headers=headers)
    client.delete(f"/{slug}/kb/collections/audited", headers=headers)
    actions = {(row["action"], row["status"]) for row in platform.audit_rows(tenant_a)}
    assert {
        ("add_document", 202),
        ("create_collection", 201),
        ("delete_document", 204),
        ("delete_collection", 204),
    } <= actions


def test_ingestion_through_the_embedding_worker(platform, tenant_a, embed_worker, redis_url):
    """The real path: dispatch to a worker serving an encoder, in batches (no stand-in embedder)."""
    wait_registered(redis_url, ENCODER)
    client, headers, slug = platform.client, tenant_a.admin_headers, tenant_a.slug
    text = "\n\n".join(f"the cat sat {n} " + "a b c d e f g " * 3 for n in range(12))
    document = wait_for(client, slug, headers, add_text(client, slug, headers, text)["id"], timeout_s=30)
    assert document["status"] == "ready" and document["chunks"] >= 2, document
    found = search(client, slug, headers, "the cat sat 7", top_k=3)
    assert found and all(hit["document_id"] == document["id"] for hit in found)


def test_one_setting_names_the_embedding_model_of_the_api_and_the_knowledge_base(
    platform, tenant_a, embed_worker, redis_url, db_engine, tmp_path
):
    """LLMP_DEFAULT_EMBEDDING_MODEL (here the kb's encoder) is what /embeddings uses when a request
    names no model, and what the knowledge base embeds with, though another embedding model, first by
    name, is enabled (a guess such as "the first embedding model" would take that one, which has no
    worker: the document would stay queued)."""
    register_model(db_engine, UNSERVED_ENCODER, str(tmp_path), 64, kind="embedding")
    try:
        wait_registered(redis_url, ENCODER)
        client, slug, headers = platform.client, tenant_a.slug, tenant_a.admin_headers
        answer = client.post(f"/{slug}/embeddings", json={"input": "the cat"}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == ENCODER
        accepted = add_text(client, slug, headers, "the cat sat on the mat")
        document = wait_for(client, slug, headers, accepted["id"], timeout_s=30)
        assert document["status"] == "ready", document
        assert search(client, slug, headers, "the cat", mode="dense")[0]["document_id"] == document["id"]
    finally:  # the catalogue outlives the test
        with db_engine.begin() as connection:
            connection.execute(text("DELETE FROM models WHERE name = :name"), {"name": UNSERVED_ENCODER})
