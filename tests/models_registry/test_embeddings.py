"""Embedding models: the embedder, and a worker serving it through the internal API and dispatch."""

from __future__ import annotations

import httpx
import pytest
import torch

from models_registry.engine.embedder import Embedder
from models_registry.engine.params import ContextLengthExceeded
from models_registry.worker.protocol import EmbedRequest
from tests.conftest import register_model
from tests.responses import assert_error, bearer
from tests.tiny_model import build_tiny_encoder
from tests.workers import WORKER_SECRET, WorkerProcess, wait_registered, worker_env

TEXTS = ["the cat sat", "the dog", "a b c d e f g"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):  # type: ignore[no-untyped-def]
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def test_vectors_are_normalized_and_do_not_depend_on_batching(encoder_dir):
    embedder = Embedder.load(encoder_dir)
    together, tokens = embedder.embed(TEXTS)
    alone = [embedder.embed([text])[0][0] for text in TEXTS]
    assert torch.allclose(torch.tensor(together), torch.tensor(alone), atol=1e-5)
    assert torch.allclose(torch.tensor(together).norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)
    assert tokens == sum(embedder.count_tokens(TEXTS))
    raw, _ = embedder.embed(TEXTS[:1], normalize=False)
    assert abs(torch.tensor(raw).norm().item() - 1.0) > 1e-3


def test_inputs_longer_than_the_model_reads_are_refused(encoder_dir):
    embedder = Embedder.load(encoder_dir)
    with pytest.raises(ContextLengthExceeded) as refused:
        embedder.embed(["a " * 200])
    assert refused.value.context_length == 64


@pytest.fixture(scope="module")
def embed_worker(database_url, redis_url, db_engine, encoder_dir, tmp_path_factory):  # type: ignore[no-untyped-def]
    register_model(db_engine, "tiny-encoder", str(encoder_dir), 64, kind="embedding")
    env = worker_env(database_url, redis_url, tmp_path_factory.mktemp("embed-worker"))
    worker = WorkerProcess("tiny-encoder", env).wait_ready()
    yield worker
    worker.stop()


def test_worker_embeds_and_dispatch_reaches_it(embed_worker, client, redis_url, encoder_dir):
    headers = {"Authorization": f"Bearer {WORKER_SECRET}"}
    body = {"request_id": "e1", "tenant": "t", "model": "tiny-encoder", "inputs": TEXTS}
    direct = httpx.post(f"{embed_worker.url}/internal/embed", json=body, headers=headers)
    assert direct.status_code == 200, direct.text
    vectors = direct.json()["embeddings"]
    assert len(vectors) == 3 and len(vectors[0]) == 32
    assert torch.allclose(
        torch.tensor(vectors), torch.tensor(Embedder.load(encoder_dir).embed(TEXTS)[0]), atol=1e-5
    )

    wait_registered(redis_url, "tiny-encoder")
    dispatcher = client.app.state.platform.dispatcher
    dispatched = client.portal.call(dispatcher.embed, EmbedRequest(**body))
    assert torch.allclose(torch.tensor(dispatched.embeddings), torch.tensor(vectors), atol=1e-6)
    too_long = httpx.post(
        f"{embed_worker.url}/internal/embed", json=body | {"inputs": ["a " * 200]}, headers=headers
    )
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"
    generate = httpx.post(
        f"{embed_worker.url}/internal/generate",
        headers=headers,
        json={
            "request_id": "g",
            "tenant": "t",
            "model": "tiny-encoder",
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert generate.status_code == 400


def test_chat_with_an_embedding_model_is_refused(embed_worker, platform, tenant_a):
    key = bearer(platform.create_key(tenant_a)["key"])
    response = platform.client.post(
        "/v1/chat/completions",
        headers=key,
        json={"model": "tiny-encoder", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert assert_error(response, 400, "invalid_model")["param"] == "model"
