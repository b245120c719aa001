"""While no worker serves the embedding model, a hybrid search (and so a grounded chat turn) answers from
full-text search alone and says so; a dense search answers 503 in the error shape. The knowledge base's
model is in the catalogue, as in a deployment whose embedding worker is down, but nothing serves it."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import register_model
from tests.llm_platform.knowledge.conftest import ENCODER, ingest, install_embedder
from tests.llm_platform.knowledge.test_grounded_chat import ASK
from tests.responses import assert_error, assert_status, sse_chunks, sse_events
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


def test_a_grounded_chat_turn_cites_what_words_found_and_says_so(served, tenant_a, unserved_encoder):
    """Every front door's answer carries `knowledge_base_degraded` beside its citations."""
    pump, _ = _documents_then_no_embedder(served, tenant_a)
    client, slug, headers = served.client, tenant_a.slug, tenant_a.admin_headers
    question = "How often is seal kit SK-4471 replaced?"
    body = {"prompt": question, **ASK, "knowledge_base": True}
    answer = assert_status(client.post(f"/{slug}/chat", json=body, headers=headers)).json()
    assert [citation["document_id"] for citation in answer["citations"]] == [pump["id"]]
    streamed = client.post(f"/{slug}/chat", json={**body, "stream": True}, headers=headers)
    openai_body = {"messages": [{"role": "user", "content": question}], **ASK, "knowledge_base": True}
    completion = client.post(f"/{slug}/v1/chat/completions", json=openai_body, headers=headers)
    chunks = sse_chunks(
        assert_status(
            client.post(f"/{slug}/v1/chat/completions", json={**openai_body, "stream": True}, headers=headers)
        )
    )
    token = headers["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect(f"/{slug}/ws/chat?token={token}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "chat", **body})
        frames = [ws.receive_json()]
        while frames[-1]["type"] == "chunk":
            frames.append(ws.receive_json())
    finals = [
        answer,
        json.loads(sse_events(assert_status(streamed))[-1]),
        assert_status(completion).json(),
        chunks[-1],
        frames[-1],
    ]
    for final in finals:
        assert final["knowledge_base_degraded"] == "lexical_only", final
        assert [citation["document_id"] for citation in final["citations"]] == [pump["id"]], final
    assert [c for c in chunks if "knowledge_base_degraded" in c] == [chunks[-1]]
