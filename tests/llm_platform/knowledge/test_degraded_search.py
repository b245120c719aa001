"""While no worker serves the embedding model, a hybrid search (and so a grounded chat turn) answers from
full-text search alone and says so; a dense search answers 503 in the error shape. The knowledge base's
model is in the catalogue, as in a deployment whose embedding worker is down, but nothing serves it."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import register_model
from tests.llm_platform.knowledge.conftest import ENCODER, ingest, install_embedder
from tests.llm_platform.knowledge.test_grounded_chat import ASK
from tests.responses import assert_error, assert_status
from tests.tiny_model import build_tiny_encoder

PUMP = "Replace the seal kit SK-4471 on the feed pump every spring."
BAKERY = "Our bakery sells sourdough bread, rye loaves and cinnamon buns every morning."


@pytest.fixture(scope="module")
def unserved_encoder(db_engine, tmp_path_factory):  # type: ignore[no-untyped-def]
    register_model(
        db_engine, ENCODER, str(build_tiny_encoder(tmp_path_factory.mktemp("kb-encoder"))), 64, "embedding"
    )


def _documents_then_no_embedder(platform, tenant) -> list[dict]:  # type: ignore[no-untyped-def]
    """Ingests with the stand-in embedder, then searches through dispatch again (no worker)."""
    knowledge = platform.client.app.state.platform.knowledge
    dispatched = knowledge.embedder
    install_embedder(platform.client)
    documents = [ingest(platform.client, tenant.slug, tenant.admin_headers, text) for text in (PUMP, BAKERY)]
    knowledge.embedder = dispatched
    return documents


def test_hybrid_falls_back_to_words_and_says_so_dense_answers_503(
    platform, tenant_a, unserved_encoder, caplog
):
    pump, _ = _documents_then_no_embedder(platform, tenant_a)
    client, slug, headers = platform.client, tenant_a.slug, tenant_a.admin_headers
    caplog.set_level(logging.WARNING, logger="llm_platform.knowledge")

    hybrid = assert_status(
        client.post(f"/{slug}/kb/search", json={"query": "seal kit SK-4471"}, headers=headers)
    )
    assert hybrid.json()["degraded"] == "lexical_only"
    assert [hit["document_id"] for hit in hybrid.json()["data"]] == [pump["id"]]
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("llm_platform.knowledge") and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1 and "answered by words only" in warnings[0]
    assert not any(r.exc_info for r in caplog.records)

    dense = client.post(f"/{slug}/kb/search", json={"query": "seal kit", "mode": "dense"}, headers=headers)
    assert_error(dense, 503, "model_unavailable")
    lexical = assert_status(
        client.post(f"/{slug}/kb/search", json={"query": "seal kit", "mode": "lexical"}, headers=headers)
    )
    assert lexical.json()["degraded"] is None and lexical.json()["data"][0]["document_id"] == pump["id"]


def test_a_grounded_chat_turn_cites_what_words_found(served, tenant_a, unserved_encoder):
    pump, _ = _documents_then_no_embedder(served, tenant_a)
    body = {"prompt": "How often is seal kit SK-4471 replaced?", **ASK, "knowledge_base": True}
    answer = assert_status(
        served.client.post(f"/{tenant_a.slug}/chat", json=body, headers=tenant_a.admin_headers)
    )
    assert [citation["document_id"] for citation in answer.json()["citations"]] == [pump["id"]]
