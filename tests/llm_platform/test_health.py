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
