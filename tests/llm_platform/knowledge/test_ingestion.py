"""Ingestion's lifecycle: queued, indexing, ready; embedding in batches; an embedding model that cannot
be reached leaves the document queued (never failed at once, never stuck); a document a dead process
left `indexing` is taken up again once its lease runs out."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from llm_platform.app import create_app
from tests.llm_platform.knowledge.conftest import HashingEmbedder, add_text, install_embedder, wait_for

ARTICLE = "\n\n".join(f"Paragraph {n} about the history of canal locks and their gates." for n in range(40))


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    # Small chunks and batches: a document of a few paragraphs takes several embedding calls.
    return settings.model_copy(
        update={
            "knowledge_chunk_tokens": 24,
            "knowledge_chunk_overlap_tokens": 4,
            "knowledge_embed_batch": 4,
            "knowledge_lease_s": 1.0,
            "knowledge_poll_s": 0.2,
        }
    )


class BlockingEmbedder(HashingEmbedder):
    """Embeds nothing until released: a document stays `indexing` meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def embed(self, tenant_slug, texts):  # type: ignore[no-untyped-def]
        await self.release.wait()
        return await super().embed(tenant_slug, texts)


def _status(client, tenant, document_id) -> str:  # type: ignore[no-untyped-def]
    return client.get(f"/{tenant.slug}/kb/documents/{document_id}", headers=tenant.admin_headers).json()[
        "status"
    ]


def _until(condition, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_status_lifecycle_and_batches(platform, tenant_a):
    client = platform.client
    blocking = install_embedder(client, BlockingEmbedder())
    accepted = add_text(client, tenant_a.slug, tenant_a.admin_headers, ARTICLE)
    assert accepted["status"] == "queued"
    _until(lambda: _status(client, tenant_a, accepted["id"]) == "indexing")
    client.portal.call(blocking.release.set)
    document = wait_for(client, tenant_a.slug, tenant_a.admin_headers, accepted["id"])
    assert document["status"] == "ready" and document["chunks"] >= 5
    assert max(blocking.calls) <= 4 and sum(blocking.calls) == document["chunks"]


def test_an_unreachable_embedding_model_leaves_the_document_queued(platform, tenant_a, db_engine):
    """No worker serves the configured model (no stand-in installed): the document waits, then goes
    through once the model is back."""
    client = platform.client
    accepted = add_text(client, tenant_a.slug, tenant_a.admin_headers, "lighthouse keepers' logbooks")
    _until(
        lambda: (
            _attempts(db_engine, accepted["id"]) >= 1
            and _status(client, tenant_a, accepted["id"]) == "queued"
        )
    )
    document = client.get(
        f"/{tenant_a.slug}/kb/documents/{accepted['id']}", headers=tenant_a.admin_headers
    ).json()
    assert document["error"] is None
    install_embedder(client)
    with db_engine.begin() as connection:  # skip the wait before the next try
        connection.execute(
            text("UPDATE kb_documents SET lease_until = NULL WHERE id = :id"), {"id": accepted["id"]}
        )
    assert wait_for(client, tenant_a.slug, tenant_a.admin_headers, accepted["id"])["status"] == "ready"


def test_a_document_left_indexing_by_a_dead_process_is_taken_up_again(
    platform, tenant_a, settings, db_engine, tmp_path
):
    platform.client.portal.call(
        platform.client.app.state.platform.ingester.close
    )  # only the two below ingest
    with TestClient(create_app(settings.model_copy(update={"data_dir": tmp_path / "dies"}))) as dying:
        install_embedder(dying, BlockingEmbedder())
        accepted = add_text(dying, tenant_a.slug, tenant_a.admin_headers, ARTICLE)
        _until(lambda: _status(dying, tenant_a, accepted["id"]) == "indexing")
    # The process stopped mid-embedding: its claim stays in the database until its lease runs out.
    assert _row(db_engine, accepted["id"])[0] == "indexing"
    with TestClient(create_app(settings.model_copy(update={"data_dir": tmp_path / "next"}))) as successor:
        install_embedder(successor)
        document = wait_for(successor, tenant_a.slug, tenant_a.admin_headers, accepted["id"])
    assert document["status"] == "ready"
    assert _row(db_engine, accepted["id"]) == ("ready", 2)


def _row(db_engine, document_id):  # type: ignore[no-untyped-def]
    with db_engine.connect() as connection:
        return connection.execute(
            text("SELECT status, attempts FROM kb_documents WHERE id = :id"), {"id": document_id}
        ).one()


def _attempts(db_engine, document_id) -> int:  # type: ignore[no-untyped-def]
    return _row(db_engine, document_id)[1]
