"""The API's /metrics under traffic: each model call counted once, by tenant, model, endpoint and
outcome, with its tokens and latencies; the cache, the limiter and the tenant-label setting."""

from __future__ import annotations

from fastapi.testclient import TestClient

from llm_platform.app import create_app
from tests.conftest import QUESTION, TINY_ENCODER, TINY_MODEL, PlatformHelper
from tests.metrics import Scrape
from tests.responses import bearer
from tests.workers import wait_registered

CHAT = "/v1/chat/completions"


def _scrape(client: TestClient) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape.of(response.text)


def _chat(client: TestClient, key: str, **body: object):  # type: ignore[no-untyped-def]
    payload = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 6, "temperature": 0, **body}
    return client.post(CHAT, json=payload, headers=bearer(key))


def test_a_chat_call_counts_one_ok_request_its_tokens_and_latencies(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    client = served.client
    before = _scrape(client)
    answer = _chat(client, key)
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    after = _scrape(client)
    labels = {"tenant": tenant_a.slug, "model": TINY_MODEL}

    def grew(name: str, **more: str) -> float:
        return after.value(name, **more) - before.value(name, **more)

    assert grew("llmp_model_requests_total", **labels, endpoint=CHAT, outcome="ok") == 1
    assert grew("llmp_model_tokens_total", **labels, type="prompt") == usage["prompt_tokens"]
    assert grew("llmp_model_tokens_total", **labels, type="completion") == usage["completion_tokens"]
    assert grew("llmp_model_request_duration_seconds_count", model=TINY_MODEL) == 1
    assert grew("llmp_model_time_to_first_token_seconds_count", model=TINY_MODEL) == 1
    if usage["completion_tokens"] > 1:  # a time per output token needs a second token
        assert grew("llmp_model_time_per_output_token_seconds_count", model=TINY_MODEL) == 1
    assert grew("llmp_response_cache_lookups_total", tenant=tenant_a.slug, result="miss") == 1
    assert grew("llmp_ratelimit_admissions_total", limiter="redis") == 1
    # The HTTP metrics stay by route template, never the raw path.
    assert after.series("llmp_requests_total", path=CHAT)
    assert not [s for s in after.series("llmp_requests_total") if tenant_a.slug in s.labels.get("path", "")]


def test_a_repeat_counts_a_cache_hit_and_cached_tokens_not_model_latency(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    client = served.client
    first = _chat(client, key)
    before = _scrape(client)
    second = _chat(client, key)
    assert second.headers["x-cache"] == "hit"
    after = _scrape(client)
    usage = first.json()["usage"]

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("llmp_response_cache_lookups_total", tenant=tenant_a.slug, result="hit") == 1
    assert grew("llmp_model_requests_total", tenant=tenant_a.slug, outcome="ok") == 1
    assert grew("llmp_model_tokens_total", tenant=tenant_a.slug, type="cached") == usage["total_tokens"]
    assert grew("llmp_model_tokens_total", tenant=tenant_a.slug, type="prompt") == 0
    assert grew("llmp_model_request_duration_seconds_count", model=TINY_MODEL) == 0


def test_a_429_counts_rate_limited_and_the_limiters_refusal(served, tenant_a, tenant_b):
    served.set_limits(tenant_a, requests_per_minute=1)
    key = served.create_key(tenant_a)["key"]
    client = served.client
    assert _chat(client, key).status_code == 200
    before = _scrape(client)
    refused = _chat(client, key, max_tokens=7)
    assert refused.status_code == 429
    after = _scrape(client)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("llmp_model_requests_total", tenant=tenant_a.slug, outcome="rate_limited") == 1
    assert grew("llmp_model_requests_total", tenant=tenant_a.slug, outcome="ok") == 0
    assert grew("llmp_ratelimit_refusals_total", dimension="requests", scope="tenant") == 1
    assert grew("llmp_model_tokens_total", tenant=tenant_a.slug) == 0  # nothing was generated
    # Another tenant's series did not move.
    assert grew("llmp_model_requests_total", tenant=tenant_b.slug) == 0


def test_quota_and_client_errors_have_their_own_outcomes(served, tenant_a):
    key = served.create_key(tenant_a)["key"]
    client = served.client
    before = _scrape(client)
    assert _chat(client, key, model="no-such-model").status_code == 404
    served.set_limits(tenant_a, daily_token_quota=1)
    assert _chat(client, key).status_code == 429
    after = _scrape(client)
    slug = tenant_a.slug
    grew = after.value("llmp_model_requests_total", tenant=slug, outcome="client_error") - before.value(
        "llmp_model_requests_total", tenant=slug, outcome="client_error"
    )
    assert grew == 1
    # An unknown model's name is not a label value: any caller could make series without end.
    assert not after.series("llmp_model_requests_total", model="no-such-model")
    assert (
        after.value("llmp_model_requests_total", tenant=slug, outcome="quota")
        - before.value("llmp_model_requests_total", tenant=slug, outcome="quota")
        == 1
    )
    assert after.value("llmp_ratelimit_refusals_total", dimension="daily_quota") > before.value(
        "llmp_ratelimit_refusals_total", dimension="daily_quota"
    )


def test_an_embeddings_call_counts_its_prompt_tokens(embed_worker, served, tenant_a, redis_url):
    wait_registered(redis_url, TINY_ENCODER)
    key = served.create_key(tenant_a)["key"]
    client = served.client
    before = _scrape(client)
    response = client.post(
        f"/{tenant_a.slug}/embeddings",
        json={"model": TINY_ENCODER, "input": ["one text", "another"]},
        headers=bearer(key),
    )
    assert response.status_code == 200, response.text
    after = _scrape(client)
    labels = {"tenant": tenant_a.slug, "model": TINY_ENCODER}
    endpoint = "/{tenant}/embeddings"
    assert (
        after.value("llmp_model_requests_total", **labels, endpoint=endpoint, outcome="ok")
        - before.value("llmp_model_requests_total", **labels, endpoint=endpoint, outcome="ok")
        == 1
    )
    assert (
        after.value("llmp_model_tokens_total", **labels, type="prompt")
        - before.value("llmp_model_tokens_total", **labels, type="prompt")
        == response.json()["usage"]["prompt_tokens"]
    )


def test_the_tenant_label_can_be_dropped(served, tenant_a, settings):
    key = served.create_key(tenant_a)["key"]
    without = settings.model_copy(update={"metrics_tenant_label": False})
    with TestClient(create_app(without)) as client:
        assert _chat(client, key).status_code == 200
        scraped = _scrape(client)
    requests = scraped.series("llmp_model_requests_total", model=TINY_MODEL, outcome="ok")
    assert requests and all("tenant" not in sample.labels for sample in requests)
    assert all("tenant" not in sample.labels for sample in scraped.series("llmp_model_tokens_total"))
    assert scraped.value("llmp_model_tokens_total", model=TINY_MODEL, type="completion") > 0


def test_live_workers_per_model_are_exported(served: PlatformHelper):
    scraped = _scrape(served.client)
    assert scraped.value("llmp_workers_live", model=TINY_MODEL, state="ready") >= 1
