"""No credential reaches a log line: not uvicorn's request lines (`?token=` on the WebSocket), not ours."""

from __future__ import annotations

import logging
import sys

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from llm_platform.core.logging_setup import RedactCredentials
from tests.workers import ApiProcess, worker_env


@pytest.fixture
def server(database_url, redis_url, tmp_path, settings, platform):  # type: ignore[no-untyped-def]
    """`llmp serve` as an operator runs it, its output (uvicorn's access log included) kept in a file."""
    env = worker_env(database_url, redis_url, tmp_path, LLMP_JWT_SECRET=settings.resolved_jwt_secret)
    api = ApiProcess(env).wait_ready()
    yield api
    api.stop()


def test_credentials_in_the_websocket_url_never_reach_the_log(server, platform, tenant_a):
    key = platform.create_key(tenant_a)["key"]
    jwt = tenant_a.admin_headers["Authorization"].removeprefix("Bearer ")
    ws_url = server.url.replace("http://", "ws://") + f"/{tenant_a.slug}/ws/chat?token="
    for credential in (key, jwt):
        with connect(ws_url + credential) as ws:
            assert '"ready"' in ws.recv(timeout=10)
    bogus = "sk-abcdefghijkl_not-a-real-secret-but-secret-looking"
    with pytest.raises(ConnectionClosed), connect(ws_url + bogus) as ws:
        ws.recv(timeout=10)
    httpx.get(f"{server.url}/healthz", params={"token": key})
    server.stop()  # every line written out
    log = server.log.read_text()
    for secret in (key, key.partition("_")[2], jwt, jwt.rpartition(".")[2], bogus.partition("_")[2]):
        assert secret not in log
    assert f'"WebSocket /{tenant_a.slug}/ws/chat?token=[REDACTED]" [accepted]' in log  # still logged
    assert "GET /healthz?token=[REDACTED]" in log


def _formatted(message: str, *args: object, exc_info: bool = False) -> str:
    record = logging.LogRecord("llm_platform.x", logging.INFO, __file__, 1, message, args, None)
    if exc_info:
        record.exc_info = sys.exc_info()
    RedactCredentials().filter(record)
    return logging.Formatter().format(record)


def test_our_own_lines_are_redacted_too():
    key = "sk-abcdefghijkl_0123456789secretsecret-_x"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert _formatted("client sent %s", key) == "client sent sk-abcdefghijkl_[REDACTED]"
    assert _formatted(f"Bearer {jwt} refused") == "Bearer [REDACTED] refused"
    assert _formatted("GET %s", "/a?x=1&api_key=abc&y=2") == "GET /a?x=1&api_key=[REDACTED]&y=2"
    try:
        raise ValueError(f"bad credential {key}")
    except ValueError:
        text = _formatted("failed", exc_info=True)
    assert "secretsecret" not in text and "sk-abcdefghijkl_[REDACTED]" in text
    assert _formatted("%s - %d", "risk-assessment?model=x", 200) == "risk-assessment?model=x - 200"
