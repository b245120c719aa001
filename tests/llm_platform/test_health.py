"""Liveness and readiness."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text

from llm_platform.app import create_app
from llm_platform.core.settings import Settings
from tests.conftest import TINY_CONTEXT, TINY_MODEL, register_model
from tests.workers import HEARTBEAT_S, wait_registered


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
    healthz = client.get("/healthz")
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
    tiny = wait_registered(redis_url, TINY_MODEL)  # the per-test FLUSHDB removed it until its next heartbeat
    time.sleep(2 * HEARTBEAT_S)  # and every other worker of the session is back too
    registered = _registered_worker_ids(redis_url)
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    tiny_workers = body.pop("models")[TINY_MODEL]
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "workers": "ok"},
        "workers": len(registered),  # every live worker, whichever model it serves
        "models_without_workers": [],
    }
    assert {worker["worker_id"] for worker in tiny} <= registered
    # Each enabled model we serve, with its workers and their state: the session's tiny worker is ready.
    assert tiny_workers["status"] == "ok"
    assert {(w["worker_id"], w["state"]) for w in tiny_workers["workers"]} == {
        (worker["worker_id"], "ready") for worker in tiny
    }
    assert all(w["capacity"] >= 1 and w["load"] >= 0 for w in tiny_workers["workers"])


def _registered_worker_ids(redis_url: str) -> set[str]:
    client = redis.Redis.from_url(redis_url)
    return {
        json.loads(raw)["worker_id"] for key in client.scan_iter("llmp:workers:*") if (raw := client.get(key))
    }


def test_readyz_is_unavailable_without_redis(only_tiny_model_enabled, settings):
    unreachable = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(unreachable)) as client:
        healthz = client.get("/healthz")
        response = client.get("/readyz")
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})  # alive all the same
    assert response.status_code == 503
    # The worker registry answers with the last workers it read (requests keep flowing through an outage);
    # a replica that never read Redis knows of none, so the model has no worker as far as it can tell.
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unreachable", "workers": "missing"},
        "workers": 0,
        "models_without_workers": [TINY_MODEL],
        "models": {TINY_MODEL: {"status": "missing", "workers": []}},
    }


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
        assert response.json()["models"]["tiny-unserved"] == {"status": "missing", "workers": []}
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
