"""The official `openai` client, unchanged, against a live server (uvicorn) and a real worker."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import TINY_MODEL, PlatformHelper


def _client_of_a_new_tenant(live_api: str, settings, **limits: object) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_api) as http:
        helper = PlatformHelper(http, settings)  # type: ignore[arg-type]
        tenant = helper.create_tenant()
        if limits:
            helper.set_limits(tenant, **limits)
        key = helper.create_key(tenant)["key"]
    return openai.OpenAI(base_url=f"{live_api}/v1", api_key=key, max_retries=0)


@pytest.fixture
def client(live_api, settings):  # type: ignore[no-untyped-def]
    return _client_of_a_new_tenant(live_api, settings)


def test_models_list(client):
    assert TINY_MODEL in [model.id for model in client.models.list()]


def test_non_streaming_completion(client):
    completion = client.chat.completions.create(
        model=TINY_MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=8,
        temperature=0,
        extra_body={"ignore_eos": True},  # runs to max_tokens whatever the random model says
    )
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 8 and completion.usage.prompt_tokens > 0


def test_streaming_completion_matches_and_reports_usage(client):
    messages = [{"role": "user", "content": "Hello"}]
    whole = client.chat.completions.create(model=TINY_MODEL, messages=messages, max_tokens=16, temperature=0)
    stream = client.chat.completions.create(
        model=TINY_MODEL,
        messages=messages,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"Cache-Control": "no-cache"},  # the engine's own stream, not the cache's replay
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()


def test_error_classes(client, live_api):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert not_found.value.code == "model_not_found"
    wrong_key = openai.OpenAI(base_url=f"{live_api}/v1", api_key="sk-not_a_real_key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong_key.models.list()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=TINY_MODEL, messages=[{"role": "user", "content": "hi"}], n=3)
    assert bad.value.status_code == 400 and bad.value.param == "n"


def test_rate_limited_requests_raise_rate_limit_error(live_api, settings):
    client = _client_of_a_new_tenant(live_api, settings, requests_per_minute=1)
    messages = [{"role": "user", "content": "Hello"}]
    raw = client.chat.completions.with_raw_response.create(model=TINY_MODEL, messages=messages, max_tokens=2)
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=TINY_MODEL, messages=messages, max_tokens=2)
    assert refused.value.code == "rate_limit_exceeded"
    assert int(refused.value.response.headers["retry-after"]) >= 1


def test_spent_quota_raises_rate_limit_error_with_its_code(live_api, settings):
    client = _client_of_a_new_tenant(live_api, settings, monthly_token_quota=10)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=TINY_MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.code == "insufficient_quota"


def test_models_retrieve(client):
    model = client.models.retrieve(TINY_MODEL)
    assert model.id == TINY_MODEL and model.object == "model" and model.created > 0
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model")
    assert missing.value.code == "model_not_found"


def test_endpoints_we_do_not_serve_say_so(client):
    with pytest.raises(openai.NotFoundError) as refused:
        client.completions.create(model=TINY_MODEL, prompt="Hello")
    assert refused.value.code == "unsupported_endpoint"
    assert "/v1/completions" in refused.value.message and "POST /v1/chat/completions" in refused.value.message
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(model=TINY_MODEL, input="Hello")
    assert refused.value.code == "unsupported_endpoint"
