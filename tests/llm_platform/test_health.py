"""Liveness and readiness."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from llm_platform.app import create_app
from llm_platform.core.settings import Settings
from tests.conftest import TINY_CONTEXT, TINY_MODEL, register_model
from tests.workers import wait_registered


@pytest.fixture
def only_tiny_model_enabled(db_engine, tiny_worker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The catalogue holds every model the session registered (and the bundled one): only the tiny
    model, which has a worker, stays enabled while the test runs."""
    with db_engine.begin() as connection:
        disabled = connection.execute(
            text("UPDATE models SET enabled = false WHERE enabled AND name != :name RETURNING name"),
            {"name": TINY_MODEL},
        ).scalars()
        names = list(disabled)
    yield
    with db_engine.begin() as connection:
        connection.execute(
            text("UPDATE models SET enabled = true WHERE name = ANY(:names)"), {"names": names}
        )


def test_healthz_and_readyz(only_tiny_model_enabled, client, redis_url):
    assert client.get("/healthz").json() == {"status": "ok"}
    wait_registered(redis_url, TINY_MODEL)  # the per-test FLUSHDB removed it until its next heartbeat
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "workers": "ok"}
    assert ready.json()["workers"] >= 1 and ready.json()["models_without_workers"] == []


def test_readyz_names_an_enabled_model_without_a_worker(
    only_tiny_model_enabled, client, db_engine, redis_url
):
    register_model(db_engine, "tiny-unserved", "/nowhere", TINY_CONTEXT)
    try:
        wait_registered(redis_url, TINY_MODEL)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert response.json()["checks"] == {"database": "ok", "redis": "ok", "workers": "missing"}
        assert response.json()["models_without_workers"] == ["tiny-unserved"]
        # Where API replicas should stay in service while a model's workers are down, a setting makes
        # missing workers a report, not a 503.
        reporting = client.app.state.platform.settings.model_copy(update={"ready_requires_workers": False})
        with TestClient(create_app(reporting)) as reporting_client:
            response = reporting_client.get("/readyz")
        assert response.status_code == 200 and response.json()["status"] == "ready"
        assert response.json()["checks"]["workers"] == "missing"
        assert response.json()["models_without_workers"] == ["tiny-unserved"]
    finally:
        with db_engine.begin() as connection:
            connection.execute(text("DELETE FROM models WHERE name = 'tiny-unserved'"))


def test_readyz_reports_an_unreachable_database(tmp_path):
    settings = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/none", data_dir=tmp_path, jwt_secret="s" * 40
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"
    assert "127.0.0.1" not in response.text


def test_opentelemetry_spans_only_when_asked_for(settings):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the global provider, as opentelemetry-instrument would set it
    spans = {}
    for enabled in (False, True):
        exporter.clear()
        with TestClient(create_app(settings.model_copy(update={"opentelemetry": enabled}))) as client:
            assert client.get("/healthz").status_code == 200
        spans[enabled] = [span.name for span in exporter.get_finished_spans()]
    assert spans[False] == []
    assert "GET /healthz" in spans[True]
