"""LLMP_DEFAULT_MAX_TOKENS is decided by the API: the worker generates that many and the rate limiter
reserves that many, not the whole context."""

from __future__ import annotations

import pytest

from llm_platform.core.settings import Settings
from tests.conftest import TINY_CONTEXT, TINY_MODEL, bearer

DEFAULT_MAX_TOKENS = 8


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"default_max_tokens": DEFAULT_MAX_TOKENS})


def test_a_request_without_max_tokens_gets_and_reserves_the_platforms_default(served, tenant_a):
    platform = served
    limit = 10_000
    platform.set_limits(tenant_a, tokens_per_minute=limit)
    key = platform.create_key(tenant_a)["key"]
    body = {"model": TINY_MODEL, "messages": [{"role": "user", "content": "Count to a thousand."}]}
    response = platform.client.post(
        "/v1/chat/completions",
        json={**body, "temperature": 0, "ignore_eos": True},
        headers={**bearer(key), "Cache-Control": "no-cache"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == DEFAULT_MAX_TOKENS
    reserved = limit - int(response.headers["x-ratelimit-remaining-tokens"])
    assert answer["usage"]["prompt_tokens"] + DEFAULT_MAX_TOKENS <= reserved < TINY_CONTEXT
