"""Chat drawing on the knowledge base (`knowledge_base` on each front door): the passages go into the
prompt, the answer cites them, only the asking tenant's documents are ever used, and an answer without
`knowledge_base` is exactly what it was."""

from __future__ import annotations

import json

from tests.conftest import TINY_MODEL
from tests.llm_platform.knowledge.conftest import ingest
from tests.responses import assert_status, sse_chunks, sse_events

ZORBIUM = "Zorbium is a fictional metal. Zorbium boils at twelve degrees and glows green in the dark."
QUESTION = "At what temperature does Zorbium boil?"
ASK = {"model": TINY_MODEL, "max_tokens": 4, "temperature": 0, "ignore_eos": True}


def _chat(client, slug, headers, **fields):  # type: ignore[no-untyped-def]
    response = client.post(f"/{slug}/chat", json={"prompt": QUESTION, **ASK, **fields}, headers=headers)
    return assert_status(response).json()


def test_each_front_door_cites_the_passages_its_prompt_held(served, tenant_a, embedder):
    client, headers, slug = served.client, tenant_a.admin_headers, tenant_a.slug
    document = ingest(client, slug, headers, ZORBIUM, title="Zorbium facts")
    cited = [{"document_id": document["id"], "title": "Zorbium facts", "chunk_index": 0}]

    def without_scores(citations):  # type: ignore[no-untyped-def]
        assert all(isinstance(c.pop("score"), float) for c in citations)
        return citations

    plain = _chat(client, slug, headers)
    grounded = _chat(client, slug, headers, knowledge_base=True)
    assert "citations" not in plain
    assert without_scores(grounded["citations"]) == cited
    # The passage is in the prompt the model read.
    assert grounded["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + len(ZORBIUM) // 8

    streamed = client.post(
        f"/{slug}/chat",
        json={"prompt": QUESTION, **ASK, "stream": True, "knowledge_base": True},
        headers=headers,
    )
    done = json.loads(sse_events(assert_status(streamed))[-1])
    assert done["done"] and without_scores(done["citations"]) == cited

    openai_body = {
        "messages": [{"role": "user", "content": QUESTION}],
        **ASK,
        "knowledge_base": {"top_k": 2},
    }
    completion = assert_status(client.post(f"/{slug}/v1/chat/completions", json=openai_body, headers=headers))
    assert without_scores(completion.json()["citations"]) == cited
    chunks = sse_chunks(
        assert_status(
            client.post(f"/{slug}/v1/chat/completions", json={**openai_body, "stream": True}, headers=headers)
        )
    )
    assert [c for c in chunks if "citations" in c] == [chunks[-1]]  # on the chunk that ends the answer
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert without_scores(chunks[-1]["citations"]) == cited
    no_kb = {k: v for k, v in openai_body.items() if k != "knowledge_base"}
    assert (
        "citations"
        not in assert_status(client.post(f"/{slug}/v1/chat/completions", json=no_kb, headers=headers)).json()
    )

    token = headers["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect(f"/{slug}/ws/chat?token={token}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "chat", "prompt": QUESTION, **ASK, "knowledge_base": True})
        frames = [ws.receive_json()]
        while frames[-1]["type"] == "chunk":
            frames.append(ws.receive_json())
    assert frames[-1]["type"] == "done" and without_scores(frames[-1]["citations"]) == cited
    # The search ran as asked: no answer says it fell back.
    for final in (grounded, done, completion.json(), chunks[-1], frames[-1]):
        assert "knowledge_base_degraded" not in final


def test_a_tenant_is_never_given_another_tenants_documents(served, tenant_a, tenant_b, embedder):
    client = served.client
    ingest(client, tenant_a.slug, tenant_a.admin_headers, ZORBIUM, title="Zorbium facts")
    answer = _chat(client, tenant_b.slug, tenant_b.admin_headers, knowledge_base=True)
    assert answer["citations"] == []  # asked, and its own knowledge base has nothing
    plain = _chat(client, tenant_b.slug, tenant_b.admin_headers)
    assert answer["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]  # nothing was added


def test_a_cached_grounded_answer_follows_the_knowledge_base(served, tenant_a, embedder):
    client, headers, slug = served.client, tenant_a.admin_headers, tenant_a.slug
    document = ingest(client, slug, headers, ZORBIUM, title="Zorbium facts")
    first = client.post(
        f"/{slug}/chat", json={"prompt": QUESTION, **ASK, "knowledge_base": True}, headers=headers
    )
    again = client.post(
        f"/{slug}/chat", json={"prompt": QUESTION, **ASK, "knowledge_base": True}, headers=headers
    )
    assert assert_status(first).headers["x-cache"] == "miss"
    assert assert_status(again).headers["x-cache"] == "hit"
    assert again.json()["citations"] == first.json()["citations"] != []
    # Once the document is gone, the answer it grounded is not served again.
    assert_status(client.delete(f"/{slug}/kb/documents/{document['id']}", headers=headers), 204)
    after = client.post(
        f"/{slug}/chat", json={"prompt": QUESTION, **ASK, "knowledge_base": True}, headers=headers
    )
    assert assert_status(after).headers["x-cache"] == "miss"
    assert after.json()["citations"] == []
