"""Liveness and readiness."""

from __future__ import annotations

from fastapi.testclient import TestClient

from llm_platform.app import create_app
from llm_platform.settings import Settings


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert isinstance(ready.json()["workers"], int)


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
