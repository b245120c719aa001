"""What a client learns before its first call: CORS for browsers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llm_platform.app import create_app
from tests.conftest import TINY_MODEL, PlatformHelper, assert_error, bearer
from tests.workers import wait_registered

ORIGIN = "https://chat.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}
EXPOSED = {
    "x-request-id",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-tokens",
    "retry-after",
    "x-cache",
}


# --- CORS -----------------------------------------------------------------------------------------


@pytest.fixture
def cors_platform(settings, clean_state) -> Iterator[PlatformHelper]:  # type: ignore[no-untyped-def]
    configured = settings.model_copy(update={"cors_allow_origins": [ORIGIN]})
    with TestClient(create_app(configured)) as client:
        yield PlatformHelper(client, configured)


def test_no_cors_headers_unless_configured(client):
    preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    simple = client.get("/healthz", headers={"Origin": ORIGIN})
    assert not any(name.startswith("access-control-") for name in simple.headers)


def test_preflight_from_an_allowed_origin_only(cors_platform):
    client = cors_platform.client
    allowed = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers  # bearer headers, not cookies

    other = client.options("/v1/chat/completions", headers=PREFLIGHT | {"Origin": "https://evil.example"})
    assert_error(other, 400, "cors_not_allowed")
    assert not any(name.startswith("access-control-") for name in other.headers)


def test_cross_origin_responses_expose_what_clients_read(cors_platform):
    response = cors_platform.client.get("/auth/me", headers={"Origin": ORIGIN})
    assert_error(response, 401)  # errors too: a browser may read them
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert set(response.headers["access-control-expose-headers"].split(", ")) >= EXPOSED


def test_credentials_only_when_turned_on(settings, clean_state):
    configured = settings.model_copy(update={"cors_allow_origins": [ORIGIN], "cors_allow_credentials": True})
    with TestClient(create_app(configured)) as client:
        preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert preflight.headers["access-control-allow-credentials"] == "true"


def test_a_streamed_chat_answer_carries_the_cors_headers(cors_platform, tiny_worker, redis_url):
    wait_registered(redis_url, TINY_MODEL)
    tenant = cors_platform.create_tenant()
    key = cors_platform.create_key(tenant)["key"]
    body = {"model": TINY_MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    body |= {"max_tokens": 4}
    with cors_platform.client.stream(
        "POST", "/v1/chat/completions", json=body, headers=bearer(key) | {"Origin": ORIGIN}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert set(response.headers["access-control-expose-headers"].split(", ")) >= EXPOSED
        assert response.headers["x-cache"] == "miss"
        assert "data: [DONE]" in "".join(response.iter_text())
