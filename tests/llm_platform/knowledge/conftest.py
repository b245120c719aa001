"""Knowledge-base fixtures: a deterministic stand-in for the embedding model (words hashed into a
vector: texts sharing words are near), installed in an app's knowledge base and ingester, and helpers
that add a document and wait for its ingestion."""

from __future__ import annotations

import hashlib
import re
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from llm_platform.core.settings import Settings
from llm_platform.knowledge.embedding import EmbeddingModel
from llm_platform.knowledge.index import normalised
from tests.conftest import register_model
from tests.tiny_model import build_tiny_encoder
from tests.workers import WorkerProcess, worker_env

DIM = 64
ENCODER = "kb-encoder"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The platform's test settings, with the knowledge base on the tiny encoder below (the catalogue
    outlives tests, and may hold other embedding models)."""
    return settings.model_copy(update={"default_embedding_model": ENCODER})


@pytest.fixture(scope="module")
def embed_worker(database_url, redis_url, db_engine, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A worker serving a tiny random encoder (context 64 tokens) as the knowledge base's model."""
    encoder_dir = build_tiny_encoder(tmp_path_factory.mktemp("kb-encoder"))
    register_model(db_engine, ENCODER, str(encoder_dir), 64, kind="embedding")
    worker = WorkerProcess(ENCODER, worker_env(database_url, redis_url, tmp_path_factory.mktemp("kb-worker")))
    yield worker.wait_ready()
    worker.stop()


class HashingEmbedder:
    """Bag of words: each word adds 1 at a position its hash picks. Deterministic, no worker."""

    def __init__(self) -> None:
        self.calls: list[int] = []  # texts per call

    async def model(self) -> EmbeddingModel:
        return EmbeddingModel("hashing", 256, lambda text: len(text.split()))

    async def embed(self, tenant_slug: str, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        rows = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                rows[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIM] += 1.0
            rows[row, 0] += 1e-3  # never all zeros
        return normalised(rows)


def install_embedder(client: TestClient, embedder: HashingEmbedder | None = None) -> HashingEmbedder:
    embedder = embedder or HashingEmbedder()
    state = client.app.state.platform  # type: ignore[attr-defined]
    state.knowledge.embedder = embedder
    state.ingester.embedder = embedder
    return embedder


@pytest.fixture
def embedder(client: TestClient) -> HashingEmbedder:
    return install_embedder(client)


def add_text(client: TestClient, slug: str, headers: dict[str, str], text: str, **fields: object) -> dict:
    response = client.post(f"/{slug}/kb/documents", json={"text": text, **fields}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def wait_for(
    client: TestClient, slug: str, headers: dict[str, str], document_id: str, timeout_s: float = 10.0
) -> dict:
    """The document once ingestion is done with it (ready or failed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/{slug}/kb/documents/{document_id}", headers=headers)
        assert response.status_code == 200, response.text
        document = response.json()
        if document["status"] in ("ready", "failed") or time.monotonic() > deadline:
            return document
        time.sleep(0.05)


def ingest(client: TestClient, slug: str, headers: dict[str, str], text: str, **fields: object) -> dict:
    accepted = add_text(client, slug, headers, text, **fields)
    document = wait_for(client, slug, headers, accepted["id"])
    assert document["status"] == "ready", document
    return document


def search(
    client: TestClient, slug: str, headers: dict[str, str], query: str, **fields: object
) -> list[dict]:
    response = client.post(f"/{slug}/kb/search", json={"query": query, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]
