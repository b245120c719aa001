"""Postgres unreachable mid-traffic (a relay in front of it is cut, see tests/proxy.py): a real API
process answers 503 in the error shape, never 500 or a dropped connection, keeps serving the API keys it
holds, spools its audit entries, and recovers when the database is back."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from llm_platform.app import create_app
from llm_platform.core.db import create_engine_for
from llm_platform.core.settings import Settings
from tests.conftest import TINY_MODEL
from tests.responses import assert_error, bearer
from tests.workers import ApiProcess, wait_registered, worker_env

BODY = {"model": TINY_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}


@pytest.fixture
def proxied_api(database_url, redis_url, db_proxy, tmp_path, settings, tiny_worker, clean_state):  # type: ignore[no-untyped-def]
    """An API process whose database is behind `db_proxy`."""
    env = worker_env(
        db_proxy.url(database_url), redis_url, tmp_path, LLMP_JWT_SECRET=settings.resolved_jwt_secret
    )
    api = ApiProcess(env).wait_ready()
    yield api
    api.stop()


async def _burst(url: str, known: str, unknown: str) -> list[httpx.Response]:
    """Chat calls with both keys and logins, at once, over a few kept-alive connections each reused."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        calls = [client.post("/v1/chat/completions", json=BODY, headers=bearer(known)) for _ in range(40)]
        calls += [client.post("/v1/chat/completions", json=BODY, headers=bearer(unknown)) for _ in range(10)]
        form = {"username": "someone@example.com", "password": "a password", "tenant": "alpha"}
        calls += [client.post("/auth/token", data=form) for _ in range(5)]
        return await asyncio.gather(*calls)  # a reset connection raises here


def test_a_database_outage_answers_503_and_known_keys_keep_working(
    proxied_api, platform, tenant_a, redis_url, db_proxy, tmp_path
):
    known, unknown = (platform.create_key(tenant_a)["key"] for _ in range(2))
    wait_registered(redis_url, TINY_MODEL)
    ok = httpx.post(f"{proxied_api.url}/v1/chat/completions", json=BODY, headers=bearer(known), timeout=30)
    assert ok.status_code == 200, ok.text  # the key, its tenant's limits and the model are now cached

    db_proxy.cut()
    time.sleep(1.5)  # past every per-process cache's TTL (1 s)
    responses = asyncio.run(_burst(proxied_api.url, known, unknown))

    known_statuses = Counter(r.status_code for r in responses[:40])
    assert known_statuses == {200: 40}, known_statuses
    for response in responses[40:]:
        error = assert_error(response, 503, "service_unavailable")
        assert response.headers["retry-after"] and response.headers["x-request-id"]
        for leak in ("SELECT", "postgresql", "psycopg", str(db_proxy.port)):
            assert leak not in error["message"]
    assert list((tmp_path / "audit-spool").glob("*.jsonl"))  # audit entries wait in the spool

    log = proxied_api.log.read_text()
    assert "database unreachable" in log
    for leak in ("Traceback", "SELECT", "[SQL", str(db_proxy.port), "Exception in ASGI application"):
        assert leak not in log, leak

    db_proxy.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        again = httpx.post(
            f"{proxied_api.url}/v1/chat/completions", json=BODY, headers=bearer(unknown), timeout=30
        )
        if again.status_code == 200:
            break
        time.sleep(0.2)
    assert again.status_code == 200, again.text


def test_a_database_that_never_answers_is_a_503_within_the_connect_timeout(tmp_path):
    # A server that accepts the TCP connection and then says nothing (a hung Postgres, a black-holing
    # firewall): without a connect timeout every request waited on it for good.
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts nor answers
        port = silent.getsockname()[1]
        settings = Settings(
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/none",
            database_connect_timeout_s=1,
            data_dir=tmp_path,
            jwt_secret="s" * 40,
        )
        with TestClient(create_app(settings)) as client:
            started = time.monotonic()
            response = client.post("/auth/token", data={"username": "a@example.com", "password": "pw"})
            elapsed = time.monotonic() - started
    assert_error(response, 503, "service_unavailable")
    assert response.headers["retry-after"]
    assert elapsed < 10  # the pool's checkout retries once: about two connect timeouts


def test_a_failed_statement_keeps_its_parameters_out_of_its_error(settings):
    # Its text reaches log lines and tracebacks: a password hash or a prompt must not be in it.
    async def fail() -> str:
        engine = create_engine_for(settings)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT :value, 1 / 0"), {"value": "secret-prompt"})
        except DBAPIError as exc:
            return str(exc)
        finally:
            await engine.dispose()
        return ""

    message = asyncio.run(fail())
    assert "division by zero" in message and "secret-prompt" not in message
